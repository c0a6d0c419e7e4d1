"""ZeroMQ CURVE for the gateway's tcp sockets: encryption plus client authentication.

Off by default (``zmq.curve = false``): the default endpoints are loopback tcp and ipc,
which other hosts cannot reach. Turn it on when a socket must cross hosts
(docs/configuration.md, ``[zmq]``):

- book_builder binds every socket, so it is the CURVE *server* of each of its sockets on a
  ``tcp://`` endpoint. It holds the server keypair (``zmq.curve_server_secret``) and a
  ZAP handler (pyzmq's :class:`~zmq.auth.thread.ThreadAuthenticator`, in its own thread so
  a busy pump loop never delays a handshake) that admits only the client public keys
  found in ``zmq.curve_authorized_dir``.
- Everything that connects (printer, ingestors, your consumers) is a CURVE *client* on
  its ``tcp://`` sockets: its own keypair (``zmq.curve_client_secret``) and the server's
  public key (``zmq.curve_server_public``).
- ``ipc://`` (and ``inproc://``) endpoints stay plain: their access check is the 0700
  directory around the socket file (:mod:`mdgw.runtime.zmqsock`), and another host cannot
  reach them anyway.

Key files are pyzmq/czmq certificates (``zmq.auth.create_certificates``): ``NAME.key``
holds the public key, ``NAME.key_secret`` both keys. ``make keys`` writes them
(:func:`create_keys`). A service loads only the keys its role needs, and only when one of
its sockets is tcp: a missing, unreadable or group/world-readable secret file, or an
authorized directory with no key, is a :class:`~mdgw.runtime.settings.ConfigError` naming
the key, and the ``*_or_exit`` helpers turn it into one stderr line and exit status 78,
like any other config error.

Server sockets also set ``ZMQ_ZAP_ENFORCE_DOMAIN``: without it libzmq admits every CURVE
client that knows the server's public key whenever no ZAP handler answers. With it, a dead
authenticator fails closed.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from mdgw.runtime.logging import get_logger
from mdgw.runtime.settings import EX_CONFIG, ConfigError, Settings

__all__ = [
    "ZAP_DOMAIN",
    "CurveClient",
    "CurveServer",
    "apply_curve",
    "client_keys",
    "client_keys_or_exit",
    "create_keys",
    "needs_curve",
    "server_keys",
    "server_keys_or_exit",
    "start_authenticator",
]

ZAP_DOMAIN: Final = "mdgw"
_KEY_LEN: Final = 40  # a Z85-encoded 32-byte Curve25519 key
# A client that keeps failing the handshake reconnects every 100 ms: log its key once a
# minute, and remember at most this many keys.
_DENIED_LOG_INTERVAL: Final = 60.0
_DENIED_KEYS_KEPT: Final = 1024


@dataclass(frozen=True, slots=True)
class CurveServer:
    """What a CURVE server socket needs: its keypair and the clients it admits."""

    public: bytes  # Z85
    secret: bytes  # Z85
    authorized: frozenset[bytes]  # Z85 public keys of admitted clients
    authorized_dir: Path


@dataclass(frozen=True, slots=True)
class CurveClient:
    """What a CURVE client socket needs: its keypair and the server's public key."""

    public: bytes
    secret: bytes
    server_public: bytes


def needs_curve(endpoint: str) -> bool:
    """Whether CURVE applies to *endpoint*: tcp only (ipc is guarded by its directory)."""
    return endpoint.startswith("tcp://")


def apply_curve(
    sock: zmq.Socket[Any], curve: CurveServer | CurveClient | None, endpoint: str
) -> None:
    """Set *sock*'s CURVE options for *endpoint*; call before ``bind``/``connect``.

    No-op when *curve* is None or the endpoint is not tcp.
    """
    if curve is None or not needs_curve(endpoint):
        return
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
    if isinstance(curve, CurveServer):
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    else:
        sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_public)


# --- loading keys -----------------------------------------------------------------------


def server_keys(settings: Settings) -> CurveServer | None:
    """book_builder's keys, or None when ``zmq.curve`` is off or none of its sockets is tcp.

    Raises :class:`ConfigError` naming the key whose file is missing or bad.
    """
    z = settings.zmq
    if not z.curve or not any(map(needs_curve, (z.raw, z.control, z.pub, z.snapshot))):
        return None
    public, secret = _load_keypair("zmq.curve_server_secret", Path(z.curve_server_secret))
    directory = Path(z.curve_authorized_dir)
    return CurveServer(public, secret, _load_authorized(directory), directory)


def client_keys(settings: Settings, endpoints: Iterable[str]) -> CurveClient | None:
    """A connecting service's keys for its sockets at *endpoints*, or None when ``zmq.curve``
    is off or none of them is tcp. Raises :class:`ConfigError` like :func:`server_keys`.
    """
    z = settings.zmq
    if not z.curve or not any(map(needs_curve, endpoints)):
        return None
    public, secret = _load_keypair("zmq.curve_client_secret", Path(z.curve_client_secret))
    server_public = _load_public("zmq.curve_server_public", Path(z.curve_server_public))
    return CurveClient(public, secret, server_public)


def server_keys_or_exit(settings: Settings) -> CurveServer | None:
    """:func:`server_keys`, or one line on stderr and exit status 78."""
    try:
        return server_keys(settings)
    except ConfigError as exc:
        _exit(exc)


def client_keys_or_exit(settings: Settings, endpoints: Iterable[str]) -> CurveClient | None:
    """:func:`client_keys`, or one line on stderr and exit status 78."""
    try:
        return client_keys(settings, endpoints)
    except ConfigError as exc:
        _exit(exc)


def _exit(exc: ConfigError) -> NoReturn:
    print(exc, file=sys.stderr, flush=True)
    raise SystemExit(EX_CONFIG) from None


def _hint(path: Path) -> str:
    return f"{path} (cwd {Path.cwd()}; `make keys` writes a set into var/keys/)"


def _read_certificate(key: str, path: Path) -> tuple[bytes, bytes | None]:
    if not path.exists():
        raise ConfigError(key, f"file not found: {_hint(path)}")
    if not path.is_file():
        raise ConfigError(key, f"not a regular file: {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(key, f"cannot read a CURVE certificate from {path}: {exc}") from None
    if len(public) != _KEY_LEN or (secret is not None and len(secret) != _KEY_LEN):
        raise ConfigError(key, f"{path}: keys must be {_KEY_LEN} Z85 characters")
    return public, secret


def _load_keypair(key: str, path: Path) -> tuple[bytes, bytes]:
    public, secret = _read_certificate(key, path)
    if secret is None:
        raise ConfigError(key, f"{path} has no secret-key: give the .key_secret file")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            key, f"{path} is open to group or others (mode {mode:04o}); chmod 600 {path}"
        )
    try:
        derived = zmq.curve_public(secret)
    except (ValueError, zmq.ZMQError) as exc:
        raise ConfigError(key, f"{path}: bad secret-key: {exc}") from None
    if derived != public:
        raise ConfigError(key, f"{path}: public-key does not belong to its secret-key")
    return public, secret


def _load_public(key: str, path: Path) -> bytes:
    return _read_certificate(key, path)[0]


def _load_authorized(directory: Path) -> frozenset[bytes]:
    key = "zmq.curve_authorized_dir"
    if not directory.exists():
        raise ConfigError(key, f"directory not found: {_hint(directory)}")
    if not directory.is_dir():
        raise ConfigError(key, f"not a directory: {directory}")
    keys = {_read_certificate(key, path)[0] for path in sorted(directory.glob("*.key"))}
    if not keys:
        raise ConfigError(
            key, f"no client public key (*.key) in {directory}: no client could connect"
        )
    return frozenset(keys)


# --- the ZAP handler --------------------------------------------------------------------


class _AuthorizedKeys:
    """pyzmq's credentials provider: admits the configured keys, logs who is refused.

    ``callback`` runs in the authenticator's thread only.
    """

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys
        self.denied = 0
        self._log = get_logger()
        self._logged: dict[bytes, float] = {}

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        self.denied += 1
        now = time.monotonic()
        last = self._logged.get(key)
        if last is None or now - last >= _DENIED_LOG_INTERVAL:
            if len(self._logged) >= _DENIED_KEYS_KEPT:
                self._logged.clear()
            self._logged[key] = now
            self._log.warning(
                "curve_client_denied",
                client_key=key.decode("ascii", "replace"),
                denied_total=self.denied,
                detail="public key not in zmq.curve_authorized_dir",
            )
        return False


def start_authenticator(ctx: zmq.Context[Any], server: CurveServer) -> ThreadAuthenticator:
    """Start the ZAP handler of *ctx* admitting ``server.authorized``; before any bind.

    The caller must ``stop()`` it before terminating *ctx* (its sockets keep
    ``ctx.term()`` waiting).
    """
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(
        ZAP_DOMAIN, credentials_provider=_AuthorizedKeys(server.authorized)
    )
    get_logger().info(
        "curve_enabled",
        authorized_keys=len(server.authorized),
        authorized_dir=str(server.authorized_dir),
    )
    return auth


# --- make keys --------------------------------------------------------------------------


def create_keys(directory: Path, clients: Sequence[str] = ("client",)) -> list[str]:
    """Write a server keypair and one keypair per client name into *directory*.

    Layout: ``server.key`` / ``server.key_secret``, ``NAME.key`` / ``NAME.key_secret``, and
    a copy of each client's public key in ``authorized/`` (the default
    ``zmq.curve_authorized_dir``). Directories are 0700, files 0600. Existing keypairs are
    kept, never overwritten (clients would be locked out). Returns one line per file
    written or kept.
    """
    report: list[str] = []
    authorized = directory / "authorized"
    old_umask = os.umask(0o077)
    try:
        for path in (directory, authorized):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)
        for name in ("server", *clients):
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"bad key name {name!r}")
            secret = directory / f"{name}.key_secret"
            public = directory / f"{name}.key"
            if secret.exists() and public.exists():
                report.append(f"kept    {secret}")
            else:
                zmq.auth.create_certificates(directory, name)
                report.append(f"created {public} {secret}")
            for path in (public, secret):
                path.chmod(0o600)
            if name != "server":
                target = authorized / public.name
                if not target.exists():
                    shutil.copyfile(public, target)
                    report.append(f"authorized {target}")
                target.chmod(0o600)
    finally:
        os.umask(old_umask)
    return report

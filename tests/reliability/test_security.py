"""Security: loopback/ipc by default, owner-only directories and keys, CURVE on tcp.

- Every default endpoint is ipc or loopback tcp (Settings, config/gateway.toml, demo.toml).
- book_builder started in an empty directory creates ``var/run`` with mode 0700 for its
  ipc sockets. (supervisord's control socket, 0700 too, is checked by
  tests/e2e/test_supervisord.py.)
- ``make keys`` writes owner-only files and never replaces existing keys.
- With ``zmq.curve = true``: a SUB or snapshot client with an authorized key gets books; one
  without CURVE, or with a key book_builder does not list, gets nothing (its handshake
  fails); the real printer with the client keys prints books. Missing or unsafe key files
  stop a service with exit 78 and one line naming the key.
"""

from __future__ import annotations

import random
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from mdgw.core import wire
from mdgw.core.wire import EnvelopeKind
from mdgw.runtime.curve import (
    CurveClient,
    CurveServer,
    apply_curve,
    client_keys,
    create_keys,
    server_keys,
)
from mdgw.runtime.settings import ConfigError, Settings, ZmqConfig, load_settings
from mdgw.testing import oracles
from mdgw.testing.endpoints import tcp_endpoint
from mdgw.testing.processes import ROOT, Service, clean_env
from mdgw.testing.tracked import TrackedBook

LOOPBACK = ("tcp://127.0.0.1:", "tcp://[::1]:", "tcp://localhost:")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- defaults -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["defaults", "config/gateway.toml", "config/demo.toml"])
def test_every_socket_is_ipc_or_loopback_by_default(source: str) -> None:
    zmq_config = ZmqConfig() if source == "defaults" else load_settings(ROOT / source, {}).zmq
    for name in ("raw", "control", "pub", "snapshot"):
        endpoint = getattr(zmq_config, name)
        assert endpoint.startswith(("ipc://", *LOOPBACK)), (name, endpoint)
    assert zmq_config.curve is False
    if source == "defaults":
        assert Settings.model_fields["simulator"].default.host == "127.0.0.1"


async def test_book_builder_makes_its_ipc_directory_owner_only(tmp_path: Path) -> None:
    # The defaults' relative ipc://var/run/... in a directory where var/ does not exist yet.
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[zmq]\npub = "{tcp_endpoint()}"\nsnapshot = "{tcp_endpoint()}"\n[log]\nformat = "json"\n'
        "[metrics]\nbook_builder = 0\n"  # no fixed port: tests run side by side
    )
    builder = Service("book_builder", config, tmp_path / "builder.log", cwd=tmp_path).start()
    try:
        deadline = time.monotonic() + 10
        while not builder.events("book_builder_started"):
            assert time.monotonic() < deadline, builder.raw_lines()
            time.sleep(0.05)
        run = tmp_path / "var" / "run"
        assert mode(run) == 0o700
        assert (run / "raw.sock").is_socket() and (run / "control.sock").is_socket()
        assert builder.stop() == 0
    finally:
        builder.kill()


# --- keys ---------------------------------------------------------------------------------


def test_make_keys_writes_owner_only_files_and_keeps_existing_ones(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    make = ["make", "-s", "-C", str(ROOT), "keys", f"KEYS_DIR={keys}", "CLIENTS=alice bob"]
    first = subprocess.run(make, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    assert mode(keys) == 0o700 and mode(keys / "authorized") == 0o700
    files = sorted(p for p in keys.rglob("*") if p.is_file())
    assert {p.name for p in files} == {
        "server.key",
        "server.key_secret",
        "alice.key",
        "alice.key_secret",
        "bob.key",
        "bob.key_secret",
    }
    assert {p.relative_to(keys).as_posix() for p in files} >= {
        "authorized/alice.key",
        "authorized/bob.key",
    }
    assert all(mode(p) == 0o600 for p in files), {p.name: oct(mode(p)) for p in files}
    server_secret = (keys / "server.key_secret").read_bytes()
    second = subprocess.run(make, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 0 and "kept" in second.stdout
    assert (keys / "server.key_secret").read_bytes() == server_secret  # never replaced


def curve_settings(keys: Path, client: str = "client", **zmq_over: Any) -> Settings:
    z = {
        "curve": True,
        "curve_server_secret": str(keys / "server.key_secret"),
        "curve_server_public": str(keys / "server.key"),
        "curve_client_secret": str(keys / f"{client}.key_secret"),
        "curve_authorized_dir": str(keys / "authorized"),
        **zmq_over,
    }
    return Settings(zmq=ZmqConfig(**z))


def test_key_loading_checks_files_and_their_modes(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    create_keys(keys, ["client"])
    settings = curve_settings(keys)
    server = server_keys(settings)
    client = client_keys(settings, [settings.zmq.pub])
    assert isinstance(server, CurveServer) and isinstance(client, CurveClient)
    assert client.public in server.authorized and client.server_public == server.public
    # Only tcp sockets need keys: all-ipc endpoints need none.
    assert client_keys(settings, ["ipc://var/run/raw.sock"]) is None
    assert client_keys(Settings(), [settings.zmq.pub]) is None  # curve off

    (keys / "server.key_secret").chmod(0o644)
    with pytest.raises(ConfigError, match="open to group or others") as exc:
        server_keys(settings)
    assert exc.value.key == "zmq.curve_server_secret"
    (keys / "server.key_secret").chmod(0o600)
    for path in (keys / "authorized").iterdir():
        path.unlink()
    with pytest.raises(ConfigError, match="no client public key") as exc:
        server_keys(settings)
    assert exc.value.key == "zmq.curve_authorized_dir"
    with pytest.raises(ConfigError, match="has no secret-key"):
        server_keys(curve_settings(keys, curve_server_secret=str(keys / "server.key")))
    with pytest.raises(ConfigError, match="file not found") as exc:
        client_keys(curve_settings(keys, client="nobody"), [settings.zmq.pub])
    assert exc.value.key == "zmq.curve_client_secret"


# --- CURVE on the wire -----------------------------------------------------------------------


class Feeder(threading.Thread):
    """Plays an ingestor on the (ipc, plain) raw socket: one book, a delta every 10 ms."""

    def __init__(self, raw: str) -> None:
        super().__init__(name="feeder", daemon=True)
        self.raw = raw
        self.stop = threading.Event()

    def run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.connect(self.raw)
        book = TrackedBook("BTCUSDT", random.Random(1))
        code = wire.category_code("linear")

        def send(kind: int, seq: int, frame: bytes = b"") -> None:
            push.send(
                oracles.encode_raw(
                    kind,
                    ingestor=b"feeder",
                    category=code,
                    conn_id=1,
                    seq=seq,
                    recv_ns=time.time_ns(),
                    frame=frame,
                )
            )

        send(EnvelopeKind.CONN_UP, 0)
        send(EnvelopeKind.DATA, 1, book.snapshot())
        seq = 1
        while not self.stop.wait(0.01):
            seq += 1
            send(EnvelopeKind.DATA, seq, book.delta())
        push.close(linger=0)
        ctx.term()


class Client:
    """A SUB (and a snapshot DEALER) with or without CURVE keys, and its handshake events."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        pub: str,
        snapshot: str,
        keys: CurveClient | None,
    ) -> None:
        self.sub = ctx.socket(zmq.SUB)
        self.sub.subscribe(b"")
        self.monitor = self.sub.get_monitor_socket()
        apply_curve(self.sub, keys, pub)
        self.sub.connect(pub)
        self.dealer = ctx.socket(zmq.DEALER)
        apply_curve(self.dealer, keys, snapshot)
        self.dealer.connect(snapshot)
        self.books = 0
        self.events: list[str] = []

    def drain(self) -> None:
        while self.sub.poll(0):
            topic, _ = self.sub.recv_multipart()
            if topic.startswith(b"book."):
                self.books += 1
        while self.monitor.poll(0):
            self.events.append(zmq.Event(recv_monitor_message(self.monitor)["event"]).name)

    def snapshot(self, timeout_ms: int) -> list[bytes] | None:
        try:
            # A DEALER without a completed handshake has no peer: sending would block.
            self.dealer.send(b"book.", zmq.NOBLOCK)
        except zmq.Again:
            return None
        return self.dealer.recv_multipart() if self.dealer.poll(timeout_ms) else None

    def close(self) -> None:
        self.sub.disable_monitor()
        for sock in (self.monitor, self.sub, self.dealer):
            sock.close(linger=0)


@pytest.fixture
def curve_gateway(tmp_path: Path, rundir: Path) -> Iterator[dict[str, Any]]:
    keys = tmp_path / "keys"
    create_keys(keys, ["client"])
    # A keypair book_builder does not list: made elsewhere, never authorized.
    stranger = tmp_path / "stranger"
    stranger.mkdir(mode=0o700)
    _, stranger_secret = zmq.auth.create_certificates(stranger, "stranger")
    Path(stranger_secret).chmod(0o600)
    endpoints = {
        "raw": f"ipc://{rundir}/raw.sock",
        "control": f"ipc://{rundir}/control.sock",
        "pub": tcp_endpoint(),
        "snapshot": tcp_endpoint(),
    }
    lines = ["[zmq]", *(f'{k} = "{v}"' for k, v in endpoints.items())]
    lines += [
        "curve = true",
        f'curve_server_secret = "{keys}/server.key_secret"',
        f'curve_server_public = "{keys}/server.key"',
        f'curve_client_secret = "{keys}/client.key_secret"',
        f'curve_authorized_dir = "{keys}/authorized"',
        "[log]",
        'format = "json"',
        "stats_interval = 1",
        "[metrics]",
        "book_builder = 0",
    ]
    config = tmp_path / "curve.toml"
    config.write_text("\n".join(lines) + "\n")
    builder = Service("book_builder", config, tmp_path / "builder.log").start()
    feeder = Feeder(endpoints["raw"])
    feeder.start()
    yield {
        "keys": keys,
        "stranger_secret": Path(stranger_secret),
        "config": config,
        "builder": builder,
        **endpoints,
    }
    feeder.stop.set()
    feeder.join(5)
    builder.kill()


def test_curve_admits_only_authorized_clients(
    curve_gateway: dict[str, Any], tmp_path: Path
) -> None:
    gw = curve_gateway
    settings = load_settings(gw["config"], {})
    authorized = client_keys(settings, [gw["pub"]])
    assert authorized is not None
    public, secret = zmq.auth.load_certificate(gw["stranger_secret"])
    assert secret is not None
    stranger = CurveClient(public, secret, authorized.server_public)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    clients = {
        "authorized": Client(ctx, gw["pub"], gw["snapshot"], authorized),
        "unknown key": Client(ctx, gw["pub"], gw["snapshot"], stranger),
        "no curve": Client(ctx, gw["pub"], gw["snapshot"], None),
    }
    printer_out = tmp_path / "printer.out"
    with printer_out.open("wb") as out:  # the child keeps its own descriptor
        printer = subprocess.Popen(
            [sys.executable, "-m", "mdgw.printer", "--json", "book"],
            cwd=ROOT,
            env=clean_env(MDGW_CONFIG=str(gw["config"])),
            stdout=out,
            stderr=subprocess.PIPE,
        )
    try:
        deadline = time.monotonic() + 15
        while clients["authorized"].books < 50 or printer_out.stat().st_size == 0:
            assert time.monotonic() < deadline, (clients["authorized"].books, gw["builder"].lines())
            for client in clients.values():
                client.drain()
            time.sleep(0.05)
        for client in clients.values():
            client.drain()
        assert clients["unknown key"].books == 0
        assert clients["no curve"].books == 0
        assert "HANDSHAKE_SUCCEEDED" in clients["authorized"].events
        assert "HANDSHAKE_FAILED_AUTH" in clients["unknown key"].events
        # A NULL client meets a CURVE server: libzmq reports a protocol error or closes.
        assert any(e.startswith("HANDSHAKE_FAILED") for e in clients["no curve"].events)
        assert not {"HANDSHAKE_SUCCEEDED"} & set(clients["unknown key"].events)
        assert not {"HANDSHAKE_SUCCEEDED"} & set(clients["no curve"].events)

        reply = clients["authorized"].snapshot(2000)
        assert reply is not None and len(wire.decode_snapshot_reply(reply)) == 1
        assert clients["unknown key"].snapshot(1000) is None
        assert clients["no curve"].snapshot(1000) is None

        first = orjson.loads(printer_out.read_bytes().splitlines()[0])
        assert first["channel"] == "book" and first["symbol"] == "BTCUSDT"
        events = {line["event"] for line in gw["builder"].lines()}
        assert {"curve_enabled", "curve_client_denied"} <= events
        denied = gw["builder"].events("curve_client_denied")[0]
        assert denied["client_key"] == public.decode()
    finally:
        printer.terminate()
        printer.communicate(timeout=10)  # reaps it and closes the stderr pipe
        for client in clients.values():
            client.close()
        ctx.term()
    assert gw["builder"].stop() == 0


def test_a_printer_with_an_unlisted_key_gets_nothing(
    curve_gateway: dict[str, Any], tmp_path: Path
) -> None:
    gw = curve_gateway
    env = clean_env(
        MDGW_CONFIG=str(gw["config"]), MDGW_ZMQ__CURVE_CLIENT_SECRET=str(gw["stranger_secret"])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdgw.printer", "--json", "--snapshot-timeout", "1.5", "book"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert out == b""
    assert b"no connection to" in err


@pytest.mark.parametrize(
    ("service", "override", "key"),
    [
        (
            "book_builder",
            {"MDGW_ZMQ__CURVE_SERVER_SECRET": "{tmp}/missing"},
            "zmq.curve_server_secret",
        ),
        ("book_builder", {"MDGW_ZMQ__CURVE_AUTHORIZED_DIR": "{tmp}"}, "zmq.curve_authorized_dir"),
        ("printer", {"MDGW_ZMQ__CURVE_CLIENT_SECRET": "{tmp}/missing"}, "zmq.curve_client_secret"),
        ("printer", {"MDGW_ZMQ__CURVE_SERVER_PUBLIC": "{tmp}/missing"}, "zmq.curve_server_public"),
        (
            "ingestor",
            {"MDGW_ZMQ__RAW": "tcp://127.0.0.1:1", "MDGW_ZMQ__CURVE_CLIENT_SECRET": "{tmp}/x"},
            "zmq.curve_client_secret",
        ),
    ],
)
def test_missing_key_files_exit_78_naming_the_key(
    tmp_path: Path, service: str, override: dict[str, str], key: str
) -> None:
    keys = tmp_path / "keys"
    create_keys(keys, ["client"])
    config = tmp_path / "curve.toml"
    config.write_text(
        "[zmq]\ncurve = true\n"
        f'pub = "{tcp_endpoint()}"\nsnapshot = "{tcp_endpoint()}"\n'
        f'raw = "ipc://{tmp_path}/raw.sock"\ncontrol = "ipc://{tmp_path}/control.sock"\n'
        f'curve_server_secret = "{keys}/server.key_secret"\n'
        f'curve_server_public = "{keys}/server.key"\n'
        f'curve_client_secret = "{keys}/client.key_secret"\n'
        f'curve_authorized_dir = "{keys}/authorized"\n'
    )
    env = clean_env(MDGW_CONFIG=str(config))
    env.update({k: v.format(tmp=tmp_path) for k, v in override.items()})
    result = subprocess.run(
        [sys.executable, "-m", f"mdgw.{service}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config error: {key}: "), lines


def test_a_tcp_socket_bound_beyond_loopback_without_curve_is_a_warning() -> None:
    from structlog.testing import capture_logs

    from mdgw.runtime.zmqsock import is_loopback, make_socket

    assert is_loopback("tcp://127.0.0.1:7100") and is_loopback("tcp://[::1]:7100")
    assert is_loopback("ipc://var/run/raw.sock")
    assert not is_loopback("tcp://*:7100") and not is_loopback("tcp://10.0.0.5:7100")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        with capture_logs() as logs:
            make_socket(ctx, zmq.PUB, "tcp://127.0.0.1:*", bind=True, hwm=10).close()
            make_socket(ctx, zmq.PUB, "tcp://*:*", bind=True, hwm=10).close()
        assert [e["event"] for e in logs] == ["tcp_socket_exposed"]
        assert logs[0]["endpoint"] == "tcp://*:*"
    finally:
        ctx.term()

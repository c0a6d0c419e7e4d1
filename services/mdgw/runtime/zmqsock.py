"""One place that creates ZeroMQ sockets the way every mdgw service wants them.

- Options that only apply before ``bind``/``connect`` (high-water marks, IMMEDIATE,
  MAXMSGSIZE, CURVE) are set first, so callers cannot get the order wrong: libzmq copies a
  socket's options into each listener at ``bind`` time, so e.g. a MAXMSGSIZE set after
  ``bind`` is silently ignored for every peer of that endpoint.
- ``LINGER`` is always set: libzmq's default (-1, wait forever for unsent messages) makes a
  service hang at exit when its peer is gone, which supervisord then has to SIGKILL.
- A connecting PUSH socket gets ``IMMEDIATE``: without it, messages sent while the peer is
  absent queue in the pipe of the pending connection (up to the HWM) and are delivered stale
  when the peer comes back; with it, ``send(NOBLOCK)`` raises ``zmq.Again`` at once, which is
  what the ingestor's drop-and-count policy wants.
- ``ipc://`` endpoints being bound get their parent directory created with mode 0700: the
  socket file inherits no permission we could rely on, so the directory is the access check.
- ``curve`` keys (:mod:`mdgw.runtime.curve`) make a ``tcp://`` socket a CURVE server or
  client before it binds or connects; ipc and inproc sockets ignore them. A tcp socket
  bound beyond loopback without them is logged as a warning (``tcp_socket_exposed``):
  anyone who can reach the port can then connect.
- ``zmq.hwm`` below :data:`HWM_FLOOR` is legal but risky; each service that uses it says so
  once at start (:func:`warn_if_hwm_below_floor`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import zmq

from mdgw.runtime.curve import CurveClient, CurveServer, apply_curve
from mdgw.runtime.logging import get_logger

__all__ = [
    "BUILDER_DRAIN_BATCH",
    "DEFAULT_LINGER_MS",
    "HWM_FLOOR",
    "NOBLOCK",
    "SNDMORE_NOBLOCK",
    "fast_send",
    "ipc_path",
    "is_loopback",
    "make_socket",
    "warn_if_hwm_below_floor",
]

DEFAULT_LINGER_MS = 200

# book_builder takes up to BUILDER_DRAIN_BATCH raw frames per wake-up, then sends what they
# produced in one go: a ``book`` and a ``bbo`` each (trades more). A queue that holds fewer
# messages than that burst drops for a subscriber that is only a moment behind, e.g. while a
# busy machine holds back book_builder's ZeroMQ I/O thread (docs/reliability.md, "Sizing").
BUILDER_DRAIN_BATCH: Final = 2048
HWM_FLOOR: Final = 2 * BUILDER_DRAIN_BATCH  # the lowest zmq.hwm the docs recommend

if TYPE_CHECKING:  # only mypy reads it: typing's TypeVar has no default before 3.13
    from typing_extensions import TypeVar

    # The socket class make_socket returns: zmq.Socket[bytes] unless socket_class says.
    _S = TypeVar("_S", bound=zmq.Socket[Any], default=zmq.Socket[bytes])

# The hot loops' sends. pyzmq's ``Socket.send`` is a Python method (routing_id/group
# handling) over the Cython one, and ``zmq.SNDMORE | zmq.NOBLOCK`` builds an enum member
# per call; the hot loops call the Cython send with plain int flags instead (a fraction of
# the cost: docs/performance.md, "Design decisions"). ``fast_send(sock, data, flags)`` is
# that Cython method, unbound: it takes any pyzmq socket (sugar sockets are subclasses),
# copies ``data`` like ``send(copy=True)`` and raises ``zmq.Again`` the same way.
fast_send: Callable[[zmq.Socket[Any], bytes, int], object] = zmq.backend.Socket.send
NOBLOCK: int = int(zmq.NOBLOCK)
SNDMORE_NOBLOCK: int = int(zmq.SNDMORE | zmq.NOBLOCK)


def ipc_path(endpoint: str) -> Path | None:
    """The filesystem path of an ``ipc://`` endpoint; None for other transports."""
    if not endpoint.startswith("ipc://"):
        return None
    return Path(endpoint[len("ipc://") :])


def is_loopback(endpoint: str) -> bool:
    """Whether a ``tcp://`` endpoint's host is loopback only (True for other transports)."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://") :].rpartition(":")[0]
    return host in ("localhost", "lo", "[::1]") or host.startswith("127.")


def make_socket(
    ctx: zmq.Context[Any],
    socket_type: int,
    endpoint: str,
    *,
    bind: bool,
    hwm: int,
    linger_ms: int = DEFAULT_LINGER_MS,
    immediate: bool | None = None,
    socket_class: Callable[[zmq.Context[Any], int], _S] | None = None,
    curve: CurveServer | CurveClient | None = None,
    max_msg_size: int | None = None,
) -> _S:
    """Create, configure and bind or connect a socket.

    ``hwm`` sets both SNDHWM and RCVHWM (each socket type uses the one that applies).
    ``immediate`` defaults to True for a connecting PUSH socket, False otherwise.
    ``socket_class`` picks another socket class on the same context, e.g.
    ``zmq.asyncio.Socket`` for a socket read from an asyncio loop while the hot path
    keeps plain synchronous sockets.
    ``curve``: CURVE server keys (the binding book_builder, which must have started
    :func:`mdgw.runtime.curve.start_authenticator` on ``ctx``) or client keys; applied only
    when ``endpoint`` is ``tcp://``.
    ``max_msg_size``: MAXMSGSIZE in bytes; a peer that sends a larger message is
    disconnected by libzmq before the message is read into memory.
    """
    sock = cast("_S", ctx.socket(socket_type, socket_class=socket_class))
    try:
        sock.setsockopt(zmq.LINGER, linger_ms)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        if immediate is None:
            immediate = socket_type == zmq.PUSH and not bind
        if immediate:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        if max_msg_size is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, max_msg_size)
        apply_curve(sock, curve, endpoint)
        if bind:
            if curve is None and not is_loopback(endpoint):
                get_logger().warning(
                    "tcp_socket_exposed",
                    endpoint=endpoint,
                    detail="bound beyond loopback without zmq.curve: anyone who can reach "
                    "it can connect (docs/configuration.md, CURVE across hosts)",
                )
            path = ipc_path(endpoint)
            if path is not None and path.parent != Path():
                os.makedirs(path.parent, mode=0o700, exist_ok=True)
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def warn_if_hwm_below_floor(hwm: int, risk: str) -> bool:
    """Log ``zmq_hwm_below_floor`` when *hwm* (``zmq.hwm``) is below :data:`HWM_FLOOR`.

    A warning, not a config error: the value is legal (a small queue bounds memory), only
    risky. *risk* says what it may cost the calling service. True when it warned.
    """
    if hwm >= HWM_FLOOR:
        return False
    get_logger().warning(
        "zmq_hwm_below_floor",
        hwm=hwm,
        floor=HWM_FLOOR,
        risk=risk,
        detail="docs/reliability.md, A slow or stalled consumer: Sizing",
    )
    return True

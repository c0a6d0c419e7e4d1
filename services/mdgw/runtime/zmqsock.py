"""One place that creates ZeroMQ sockets the way every mdgw service wants them.

- Options that only apply before ``bind``/``connect`` (high-water marks, IMMEDIATE) are set
  first, so callers cannot get the order wrong.
- ``LINGER`` is always set: libzmq's default (-1, wait forever for unsent messages) makes a
  service hang at exit when its peer is gone, which supervisord then has to SIGKILL.
- A connecting PUSH socket gets ``IMMEDIATE``: without it, messages sent while the peer is
  absent queue in the pipe of the pending connection (up to the HWM) and are delivered stale
  when the peer comes back; with it, ``send(NOBLOCK)`` raises ``zmq.Again`` at once, which is
  what the ingestor's drop-and-count policy wants.
- ``ipc://`` endpoints being bound get their parent directory created with mode 0700: the
  socket file inherits no permission we could rely on, so the directory is the access check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import zmq

__all__ = ["DEFAULT_LINGER_MS", "ipc_path", "make_socket"]

DEFAULT_LINGER_MS = 200

_S = TypeVar("_S", bound=zmq.Socket[Any])


def ipc_path(endpoint: str) -> Path | None:
    """The filesystem path of an ``ipc://`` endpoint; None for other transports."""
    if not endpoint.startswith("ipc://"):
        return None
    return Path(endpoint[len("ipc://") :])


@overload
def make_socket(
    ctx: zmq.Context[Any],
    socket_type: int,
    endpoint: str,
    *,
    bind: bool,
    hwm: int,
    linger_ms: int = DEFAULT_LINGER_MS,
    immediate: bool | None = None,
    socket_class: None = None,
) -> zmq.Socket[bytes]: ...


@overload
def make_socket(
    ctx: zmq.Context[Any],
    socket_type: int,
    endpoint: str,
    *,
    bind: bool,
    hwm: int,
    linger_ms: int = DEFAULT_LINGER_MS,
    immediate: bool | None = None,
    socket_class: Callable[[zmq.Context[Any], int], _S],
) -> _S: ...


def make_socket(
    ctx: zmq.Context[Any],
    socket_type: int,
    endpoint: str,
    *,
    bind: bool,
    hwm: int,
    linger_ms: int = DEFAULT_LINGER_MS,
    immediate: bool | None = None,
    socket_class: Callable[[zmq.Context[Any], int], Any] | None = None,
) -> Any:
    """Create, configure and bind or connect a socket.

    ``hwm`` sets both SNDHWM and RCVHWM (each socket type uses the one that applies).
    ``immediate`` defaults to True for a connecting PUSH socket, False otherwise.
    ``socket_class`` picks another socket class on the same context, e.g.
    ``zmq.asyncio.Socket`` for a socket read from an asyncio loop while the hot path
    keeps plain synchronous sockets.
    """
    sock = ctx.socket(socket_type, socket_class=socket_class)
    try:
        sock.setsockopt(zmq.LINGER, linger_ms)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        if immediate is None:
            immediate = socket_type == zmq.PUSH and not bind
        if immediate:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        if bind:
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

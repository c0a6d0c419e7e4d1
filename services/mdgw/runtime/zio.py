"""book_builder's hot ZeroMQ I/O: a drain of non-blocking receives, and ``[topic, payload]``
sends, in C when it can, else with pyzmq.

- ``recv_batch(sock, limit)`` receives up to ``limit`` waiting messages without
  blocking and returns ``(messages, drained)``: ``drained`` is True when the batch ended
  because the socket was empty, which is what re-arms ZeroMQ's edge-triggered FD; False
  when ``limit`` (or a signal) ended it, and more may be waiting that the FD will not
  announce again. An error after some messages were received ends the batch the same way
  (not drained), so none of them is lost; the next call, with none in hand, raises it.
- ``send_pairs(sock, pairs)`` sends each ``(topic, payload)`` as a two-frame
  message without blocking, and returns how many pairs met ``zmq.Again`` (a PUB drops at
  its high-water mark by itself; this counts the sockets that refuse instead).

Other errors raise :class:`zmq.ZMQError` either way, and so does a closed socket (ENOTSOCK,
as pyzmq does). Use them from the thread that owns the socket.

:data:`IN_USE` holds the two functions (an :class:`IO`) and :data:`ACTIVE` says which they
are, decided once at import: ``mdgw.runtime._zio`` (the C
extension built with the compiled hot path, :mod:`mdgw.compiled`) calling the libzmq that
pyzmq loaded, or pyzmq's Cython ``recv``/``send`` in a Python loop, as before it. The C
loop exists because pyzmq costs about a microsecond a call, and the receive that ends each
drain with ``zmq.Again`` several (docs/performance.md, "Follow-up: the builder's ZeroMQ I/O
in C"). :data:`PYZMQ` keeps the pyzmq pair for A/B runs and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

import zmq

from mdgw.runtime.zmqsock import NOBLOCK, SNDMORE_NOBLOCK, fast_send

__all__ = ["ACTIVE", "C_IO", "IN_USE", "IO", "PYZMQ"]

_recv: Callable[[zmq.Socket[Any], int], bytes] = zmq.backend.Socket.recv


def _recv_batch_pyzmq(sock: zmq.Socket[Any], limit: int) -> tuple[list[bytes], bool]:
    batch: list[bytes] = []
    taken = batch.append
    recv = _recv
    for _ in range(limit):
        try:
            taken(recv(sock, NOBLOCK))
        except zmq.Again:
            return batch, True
        except zmq.ZMQError:
            if batch:  # keep what was received: the next call, with none in hand, raises it
                return batch, False
            raise
    return batch, False


def _send_pairs_pyzmq(sock: zmq.Socket[Any], pairs: list[tuple[bytes, bytes]]) -> int:
    dropped = 0
    for topic, payload in pairs:
        try:
            fast_send(sock, topic, SNDMORE_NOBLOCK)
            fast_send(sock, payload, NOBLOCK)
        except zmq.Again:
            dropped += 1
    return dropped


class IO(NamedTuple):
    """One implementation of the pair, and what it is (for logs and benchmarks)."""

    name: str
    recv_batch: Callable[[zmq.Socket[Any], int], tuple[list[bytes], bool]]
    send_pairs: Callable[[zmq.Socket[Any], list[tuple[bytes, bytes]]], int]


PYZMQ: Final = IO("pyzmq", _recv_batch_pyzmq, _send_pairs_pyzmq)


def _c_io() -> tuple[IO | None, str]:
    try:
        # Optional, absent from the pure-Python build: PLC0415 (import in a function).
        from mdgw.runtime import _zio  # noqa: PLC0415
    except ImportError:
        return None, "pyzmq (no C extension: pure-Python build)"
    try:
        # pyzmq's own extension, which links the libzmq it loaded (see _zio.c)
        from zmq.backend.cython import _zmq  # noqa: PLC0415

        version = _zio.load(_zmq.__file__, zmq.ZMQError)
    except (ImportError, AttributeError) as exc:  # another backend, or no libzmq found
        return None, f"pyzmq (the C extension cannot reach libzmq: {exc})"
    c_recv_batch = _zio.recv_batch
    c_send_pairs = _zio.send_pairs
    enotsock = zmq.ENOTSOCK

    # sock.closed first: a closed socket's handle may point at freed memory.
    def recv_batch_c(sock: zmq.Socket[Any], limit: int) -> tuple[list[bytes], bool]:
        if sock.closed:
            raise zmq.ZMQError(enotsock)
        return c_recv_batch(sock.underlying, limit)

    def send_pairs_c(sock: zmq.Socket[Any], pairs: list[tuple[bytes, bytes]]) -> int:
        if sock.closed:
            raise zmq.ZMQError(enotsock)
        return c_send_pairs(sock.underlying, pairs)

    name = "C (mdgw.runtime._zio, libzmq {}.{}.{})".format(*version)
    return IO(name, recv_batch_c, send_pairs_c), name


C_IO, _ACTIVE = _c_io()
IN_USE: Final[IO] = PYZMQ._replace(name=_ACTIVE) if C_IO is None else C_IO
ACTIVE: Final[str] = IN_USE.name
"""``"C (mdgw.runtime._zio, libzmq 4.3.5)"`` or ``"pyzmq (...why)"``."""

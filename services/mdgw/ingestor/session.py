"""One websocket session of a connection slot: its state, how it opens, closes and ends.

A :class:`~mdgw.ingestor.connection.Connection` opens a new session for every websocket it
keeps (its own ``conn_id``, outbox and DATA sequence); this module holds what one session
is and the websockets settings it is opened and closed with, and turns the ways it can fail
or end into one short reason for the log.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import websockets
from structlog.typing import FilteringBoundLogger
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

__all__ = [
    "MESSAGE_TOO_BIG",
    "ConnectionTiming",
    "Session",
    "close_fast",
    "close_reason",
    "connect_failure",
    "open_websocket",
]

# websockets buffers this many frames before it stops reading the TCP socket. The default
# (16) is sized for interactive use; a burst of book frames after a pause is larger.
MAX_QUEUE: Final = 1024
# How long close() waits for Bybit's half of the closing handshake.
CLOSE_TIMEOUT: Final = 1.0
# How long to wait for a polite close (ours or Bybit's) before aborting the TCP connection.
FAST_CLOSE_TIMEOUT: Final = 0.5
# A session that has received data for this long resets the reconnect backoff.
HEALTHY_AFTER: Final = 30.0
# Close code websockets sends when a frame exceeds max_size.
MESSAGE_TOO_BIG: Final = 1009


@dataclass(frozen=True, slots=True)
class ConnectionTiming:
    """The timing knobs of a connection (seconds)."""

    ping_interval: float
    silence_timeout: float
    connect_timeout: float
    healthy_after: float = HEALTHY_AFTER


class Session:
    """What lives as long as one websocket."""

    __slots__ = ("conn_id", "data_frames", "log", "outbox", "reason", "started", "ws")

    def __init__(
        self, ws: ClientConnection, conn_id: int, started: float, log: FilteringBoundLogger
    ) -> None:
        self.ws = ws
        self.conn_id = conn_id
        self.log = log.bind(conn_id=conn_id)
        self.started = started
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.data_frames = 0  # DATA seq: sent or dropped, no holes
        self.reason: str | None = None  # why we closed it, when we did


async def open_websocket(
    url: str, timing: ConnectionTiming, max_frame_bytes: int
) -> ClientConnection:
    """Open a websocket to Bybit as the ingestor uses it."""
    return await connect(
        url,
        compression=None,  # Bybit has mis-negotiated permessage-deflate before
        max_size=max_frame_bytes,
        max_queue=MAX_QUEUE,
        open_timeout=timing.connect_timeout,
        ping_interval=None,  # app-level {"op":"ping"} instead, as Bybit asks
        close_timeout=CLOSE_TIMEOUT,
    )


async def close_fast(ws: ClientConnection) -> None:
    """Close politely if Bybit answers at once, else drop the TCP connection."""
    try:
        await asyncio.wait_for(ws.close(), FAST_CLOSE_TIMEOUT)
    except (TimeoutError, OSError, websockets.WebSocketException):
        pass
    finally:
        if ws.transport is not None and not ws.transport.is_closing():
            ws.transport.abort()


def connect_failure(exc: BaseException) -> str:
    """One short reason per failed attempt, for the log line."""
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} on upgrade"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, InvalidHandshake):
        return f"handshake failed: {exc}"
    return f"{type(exc).__name__}: {exc}"  # DNS failures, resets, TLS errors, ...


def close_reason(exc: ConnectionClosed) -> str:
    if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG:
        return f"frame above max_size: {exc.sent.reason}".rstrip()
    if exc.rcvd is not None:
        return f"closed by server: {exc.rcvd.code} {exc.rcvd.reason}".rstrip()
    if exc.sent is not None:
        return f"closed by us: {exc.sent.code} {exc.sent.reason}".rstrip()
    return "connection lost"

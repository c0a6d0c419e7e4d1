"""Deadline receives from a websocket (the simulator's, in tests): decoded frames, or
``TimeoutError`` past the deadline.

Apart from :mod:`mdgw.testing.reference` because they do I/O (asyncio, websockets), which
the naive book there must not (import-boundary test).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

__all__ = ["recv_frame", "recv_until"]


async def recv_frame(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame, decoded; TimeoutError after *timeout* seconds."""
    async with asyncio.timeout(timeout):
        message = await ws.recv()
    frame: dict[str, Any] = orjson.loads(message)
    return frame


async def recv_until(
    ws: ClientConnection,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Receive frames until one satisfies *predicate*; TimeoutError past the deadline."""
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = orjson.loads(await ws.recv())
            if predicate(frame):
                return frame

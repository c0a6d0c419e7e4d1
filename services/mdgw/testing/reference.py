"""Helpers for tests that talk to the simulator: a naive reference book and deadline receives.

The reference book is deliberately simple (a dict from Decimal price to the strings Bybit
sent), so that a test comparing it with :meth:`mdgw.simulator.market.Market.truth` checks the
simulator's deltas against an independent implementation of Bybit's rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

__all__ = ["ReferenceBook", "recv_frame", "recv_until"]

Levels = list[tuple[str, str]]


class ReferenceBook:
    """Bybit's book rules, naively: a snapshot replaces, a delta sets or ("0") deletes."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}
        self.u: int | None = None

    def apply(self, frame: dict[str, Any]) -> None:
        data = frame["data"]
        if frame["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
            for price, size in levels:
                if size == "0":
                    del side[Decimal(price)]  # KeyError: a delete of a level we do not have
                else:
                    side[Decimal(price)] = (price, size)
        self.u = data["u"]

    def bid_levels(self) -> Levels:
        return [self.bids[price] for price in sorted(self.bids, reverse=True)]

    def ask_levels(self) -> Levels:
        return [self.asks[price] for price in sorted(self.asks)]

    def crossed(self) -> bool:
        return bool(self.bids and self.asks) and max(self.bids) >= min(self.asks)


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

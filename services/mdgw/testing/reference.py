"""A naive book of Bybit's rules, for tests and the harness (sans-I/O: import-boundary test).

It is deliberately simple (a dict from Decimal price to the strings Bybit sent), so that a
test comparing it with :meth:`mdgw.simulator.market.Market.truth` checks the simulator's
deltas against an independent implementation of Bybit's rules, and
:class:`mdgw.testing.tracked.TrackedBook` knows the true book at every ``u``. The deadline
receives from a websocket are in :mod:`mdgw.testing.ws_receive`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = ["ReferenceBook"]

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

"""A book whose correct state at every ``u`` is known: valid frames for the fuzzer and tests.

:class:`TrackedBook` generates a snapshot and then deltas of one ``orderbook.50`` topic
(linear), applies each to a naive :class:`~mdgw.testing.reference.ReferenceBook`, and
remembers the true top :data:`PUBLISH_DEPTH` levels at each ``u``, so that whatever
book_builder publishes for it can be checked exactly.
"""

from __future__ import annotations

import random
from decimal import Decimal

import orjson

from mdgw.testing.reference import ReferenceBook

__all__ = ["DEPTH", "MAX_LEVELS", "PUBLISH_DEPTH", "TrackedBook"]

DEPTH = 50
PUBLISH_DEPTH = 25
MAX_LEVELS = 40  # per side: below the topic's depth, so no level ever falls off the window


class TrackedBook:
    """One tracked topic: generates valid frames and remembers the true top at each u."""

    def __init__(self, symbol: str, rng: random.Random) -> None:
        self.symbol = symbol
        self.topic = f"orderbook.{DEPTH}.{symbol}"
        self.rng = rng
        self.ref = ReferenceBook()
        self.u = 0
        self.truth: dict[int, tuple[list[list[str]], list[list[str]]]] = {}

    @staticmethod
    def _price(key: int) -> str:
        return f"{key / 100:.2f}"

    def _size(self) -> str:
        return f"{self.rng.randint(1, 50_000) / 1000:.3f}"

    def snapshot(self) -> bytes:
        rng = self.rng
        bids = sorted(rng.sample(range(9_000, 9_999), MAX_LEVELS // 2), reverse=True)
        asks = sorted(rng.sample(range(10_001, 11_000), MAX_LEVELS // 2))
        return self._frame(
            "snapshot",
            [[self._price(k), self._size()] for k in bids],
            [[self._price(k), self._size()] for k in asks],
        )

    def delta(self) -> bytes:
        """Up to three changes per side: delete, resize or insert; never crossed."""
        rng = self.rng
        changes: dict[str, list[list[str]]] = {"b": [], "a": []}
        for side, held, lo, hi in (
            ("b", self.ref.bids, 9_000, 9_999),
            ("a", self.ref.asks, 10_001, 11_000),
        ):
            touched: set[Decimal] = set()  # one change per price: the last would win
            levels = len(held)
            for _ in range(rng.randint(0, 3)):
                roll = rng.random()
                candidates = [p for p in held if p not in touched]
                if candidates and (roll < 0.3 or levels >= MAX_LEVELS):
                    price = rng.choice(candidates)
                    touched.add(price)
                    levels -= 1
                    changes[side].append([held[price][0], "0"])
                elif candidates and roll < 0.6:
                    price = rng.choice(candidates)
                    touched.add(price)
                    changes[side].append([held[price][0], self._size()])
                else:
                    text = self._price(rng.randint(lo, hi))
                    if Decimal(text) not in held and Decimal(text) not in touched:
                        touched.add(Decimal(text))
                        levels += 1
                        changes[side].append([text, self._size()])
        return self._frame("delta", changes["b"], changes["a"])

    def _frame(self, kind: str, bids: list[list[str]], asks: list[list[str]]) -> bytes:
        self.u += 1
        frame = {
            "topic": self.topic,
            "type": kind,
            "ts": 1_700_000_000_000 + self.u,
            "data": {"s": self.symbol, "b": bids, "a": asks, "u": self.u, "seq": self.u},
            "cts": 1_700_000_000_000 + self.u,
        }
        self.ref.apply(frame)
        self.truth[self.u] = (
            [list(x) for x in self.ref.bid_levels()[:PUBLISH_DEPTH]],
            [list(x) for x in self.ref.ask_levels()[:PUBLISH_DEPTH]],
        )
        return orjson.dumps(frame)

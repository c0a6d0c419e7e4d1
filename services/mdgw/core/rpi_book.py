"""The order book of one Bybit ``orderbook.rpi.{symbol}`` topic, as a state machine.

Bybit's RPI book (docs: "RPI Orderbook", spot since 2025-07-15, perpetuals and futures
since 2025-07-22): 50 levels a side every 100 ms, snapshot then deltas with ``u``, and each
level is ``[price, non-RPI size, RPI size]``. The ordinary ``orderbook.*`` topics leave RPI
(Retail Price Improvement) orders out; this one shows both sizes side by side.

The sequencing rules are those of :mod:`mdgw.core.book`, and so are the outcomes:

- a snapshot, with any ``u``, replaces the book;
- a delta is applied only to a live book and only if ``u == last_u + 1``; ``u <= last_u`` is
  a duplicate, anything else a gap that drops the book until the next snapshot;
- in a delta both sizes are absolute: a level whose two sizes are both zero is removed
  (Bybit's example delta holds ``["121969.9","0","0"]``), a level with one size zero keeps
  the other (``["121960.5","0","0.163986"]`` is a level holding RPI size only).

Crossed check: Bybit hides an RPI bid's size where it would cross the best *non-RPI* ask
(and an RPI ask where it would cross the best non-RPI bid), but says nothing about RPI
orders of both sides overlapping each other. So the book counts as crossed only when its
best bid holding non-RPI size is at or above its best ask holding non-RPI size: that can
only be a broken book, whereas a check over every level could fire on a correct one.

Layout as in :class:`mdgw.core.book.OrderBook`: per side parallel lists kept sorted with
:mod:`bisect` (keys, ``(price, non_rpi, rpi)`` string triples, and each level's JSON text
``["price","non_rpi","rpi"]``), bid keys negated so both sides ascend best first.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from mdgw.core.book import BookOutcome, best_json, delta_verdict, top_json
from mdgw.core.bybit import RpiFrame, RpiLevel

__all__ = ["RpiBook"]

Triple = tuple[str, str, str]


class RpiBook:
    """Bids and asks of one RPI topic, kept in sync by ``u`` (see the module docstring)."""

    __slots__ = (
        "_ask_json",
        "_ask_keys",
        "_asks",
        "_bid_json",
        "_bid_keys",
        "_bids",
        "_last_u",
        "_live",
        "_max_depth",
    )

    def __init__(self, max_depth: int) -> None:
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        self._max_depth = max_depth
        self._live = False
        self._last_u: int | None = None
        self._bid_keys: list[float] = []
        self._bids: list[Triple] = []
        self._bid_json: list[str] = []
        self._ask_keys: list[float] = []
        self._asks: list[Triple] = []
        self._ask_json: list[str] = []

    @property
    def live(self) -> bool:
        return self._live

    @property
    def last_u(self) -> int | None:
        return self._last_u

    @property
    def max_depth(self) -> int:
        return self._max_depth

    def apply(self, frame: RpiFrame) -> BookOutcome:
        """Apply a decoded ``orderbook.rpi.*`` frame (snapshot or delta)."""
        if frame.snapshot:
            return self.apply_snapshot(frame.u, frame.bids, frame.asks)
        return self.apply_delta(frame.u, frame.bids, frame.asks)

    def apply_snapshot(
        self, u: int, bids: Sequence[RpiLevel], asks: Sequence[RpiLevel]
    ) -> BookOutcome:
        self._bid_keys, self._bids, self._bid_json = _build_side(bids, -1.0, self._max_depth)
        self._ask_keys, self._asks, self._ask_json = _build_side(asks, 1.0, self._max_depth)
        self._last_u = u
        if self._is_crossed():
            self._drop()
            return BookOutcome.CROSSED
        self._live = True
        return BookOutcome.RESET

    def apply_delta(
        self, u: int, bids: Sequence[RpiLevel], asks: Sequence[RpiLevel]
    ) -> BookOutcome:
        verdict = delta_verdict(self._live, self._last_u, u)
        if verdict is not None:
            if verdict is BookOutcome.GAP:
                self._drop()
            return verdict
        depth = self._max_depth
        if bids:
            _update_side(self._bid_keys, self._bids, self._bid_json, bids, -1.0, depth)
        if asks:
            _update_side(self._ask_keys, self._asks, self._ask_json, asks, 1.0, depth)
        self._last_u = u
        if self._is_crossed():
            self._drop()
            return BookOutcome.CROSSED
        return BookOutcome.APPLIED

    def invalidate(self) -> None:
        self._drop()
        self._last_u = None

    def top_bids(self, n: int) -> list[Triple]:
        return self._bids[:n]

    def top_asks(self, n: int) -> list[Triple]:
        return self._asks[:n]

    def top_json(self, n: int) -> tuple[str, str]:
        """The ``n`` best bids and asks as JSON array bodies (``'["99.5","1","0"]'``)."""
        return top_json(self._bid_json, self._ask_json, n)

    def best_json(self) -> tuple[str | None, str | None]:
        return best_json(self._bid_json, self._ask_json)

    def _is_crossed(self) -> bool:
        bid = _best_non_rpi(self._bid_keys, self._bids)
        ask = _best_non_rpi(self._ask_keys, self._asks)
        return bid is not None and ask is not None and -bid >= ask

    def _drop(self) -> None:
        self._live = False
        self._bid_keys, self._bids, self._bid_json = [], [], []
        self._ask_keys, self._asks, self._ask_json = [], [], []


def _best_non_rpi(keys: list[float], triples: list[Triple]) -> float | None:
    # Usually the first level: RPI-only levels at the touch are the exception.
    for key, triple in zip(keys, triples, strict=True):
        if float(triple[1]) != 0.0:
            return key
    return None


def _text(price: str, non_rpi: str, rpi: str) -> str:
    return f'["{price}","{non_rpi}","{rpi}"]'


def _build_side(
    levels: Sequence[RpiLevel], sign: float, depth: int
) -> tuple[list[float], list[Triple], list[str]]:
    side: dict[float, Triple] = {}
    for key, price, non_rpi, rpi, qty in levels:
        if qty == 0.0:
            side.pop(key * sign, None)
        else:
            side[key * sign] = (price, non_rpi, rpi)
    keys = sorted(side)[:depth]
    triples = [side[k] for k in keys]
    return keys, triples, [_text(*t) for t in triples]


def _update_side(  # noqa: PLR0917 (positional on purpose: runs per delta)
    keys: list[float],
    triples: list[Triple],
    texts: list[str],
    levels: Sequence[RpiLevel],
    sign: float,
    depth: int,
) -> None:
    for key, price, non_rpi, rpi, qty in levels:
        k = key * sign
        i = bisect_left(keys, k)
        if i < len(keys) and keys[i] == k:
            if qty == 0.0:
                del keys[i]
                del triples[i]
                del texts[i]
            else:
                triples[i] = (price, non_rpi, rpi)
                texts[i] = _text(price, non_rpi, rpi)
        elif qty != 0.0:
            keys.insert(i, k)
            triples.insert(i, (price, non_rpi, rpi))
            texts.insert(i, _text(price, non_rpi, rpi))
    if len(keys) > depth:
        del keys[depth:]
        del triples[depth:]
        del texts[depth:]

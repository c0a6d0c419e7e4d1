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

Sequencing, layout and reads are :class:`mdgw.core.book.SyncedBook`'s, shared with
:class:`mdgw.core.book.OrderBook`: per side parallel lists kept sorted with :mod:`bisect`
(keys, ``(price, non_rpi, rpi)`` string triples, and each level's JSON text
``["price","non_rpi","rpi"]``), bid keys negated so both sides ascend best first. This
module says only how RPI levels are built and updated and when the book is crossed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from mdgw.core.book import BookOutcome, SyncedBook
from mdgw.core.bybit import RpiFrame, RpiLevel

__all__ = ["RpiBook"]

Triple = tuple[str, str, str]


class RpiBook(SyncedBook[Triple, RpiLevel]):
    """Bids and asks of one RPI topic, kept in sync by ``u`` (see the module docstring)."""

    __slots__ = ()

    def apply(self, frame: RpiFrame) -> BookOutcome:
        """Apply a decoded ``orderbook.rpi.*`` frame (snapshot or delta)."""
        if frame.snapshot:
            return self.apply_snapshot(frame.u, frame.bids, frame.asks)
        return self.apply_delta(frame.u, frame.bids, frame.asks)

    def _build_side(
        self, levels: Sequence[RpiLevel], sign: float
    ) -> tuple[list[float], list[Triple], list[str]]:
        return _build_side(levels, sign, self._max_depth)

    def _update_side(
        self,
        keys: list[float],
        items: list[Triple],
        texts: list[str],
        levels: Sequence[RpiLevel],
        sign: float,
    ) -> None:
        _update_side(keys, items, texts, levels, sign, self._max_depth)

    def _is_crossed(self) -> bool:
        bid = _best_non_rpi(self._bid_keys, self._bids)
        ask = _best_non_rpi(self._ask_keys, self._asks)
        return bid is not None and ask is not None and -bid >= ask


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

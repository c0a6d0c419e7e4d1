"""One symbol's ``bbo`` fed by two Bybit books: ``orderbook.1`` and a deeper depth.

Bybit pushes ``orderbook.1`` every 10 ms and deeper books every 20 to 200 ms, so the top of
book is freshest in whichever arrived last *by Bybit's clock*, not ours. Every book frame
carries ``seq``, Bybit's cross sequence: one counter of the matching engine, shared by all
depth topics of a symbol, so a smaller ``seq`` was generated earlier (docs: orderbook,
"seq"). It is not contiguous, so it can order frames but cannot reveal lost ones (``u``
does that, per topic, in :mod:`mdgw.core.book`).

The rule, per symbol: a top of book from either book is taken only if its ``seq`` is
greater than that of every top taken before; a taken top is published when it differs from
the last one published. So the ``bbo`` never goes back in ``seq`` and never repeats itself.
Equal ``seq`` means the same engine state, hence the same top: nothing to publish.

The ``seq`` is never forgotten across resyncs: a book that comes back brings a snapshot
whose ``seq`` may be older than the last top published, and it must not take the bbo back.
The one way out is a safety valve: should Bybit ever restart its cross sequence lower, every
top would be refused; after :data:`RESTART_AFTER` refusals in a row (about ten seconds of
``orderbook.1`` traffic; in normal running refusals are interleaved with fresher tops) the
sequence is taken to have restarted and the next top is taken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from mdgw.core.hub_state import BookTopic

__all__ = ["RESTART_AFTER", "BboFusion", "join_symbol"]

RESTART_AFTER = 1000


class BboFusion:
    """The freshest-``seq`` rule of one symbol's fused ``bbo`` (sans-I/O)."""

    __slots__ = ("best", "last_bbo", "older", "refused_in_a_row", "seq")

    def __init__(self) -> None:
        self.seq = -1  # seq of the freshest top taken; -1: none since the last reset
        self.best: tuple[str | None, str | None] | None = None  # last published top
        self.last_bbo: bytes | None = None  # last published payload (snapshot service)
        self.older = 0  # tops refused because their seq was not newer
        self.refused_in_a_row = 0

    def offer(self, seq: int, best: tuple[str | None, str | None]) -> bool:
        """A book's top after a frame with Bybit ``seq``: True if it is to be published."""
        if seq <= self.seq:
            self.refused_in_a_row += 1
            if self.refused_in_a_row <= RESTART_AFTER:
                self.older += 1
                return False
        self.refused_in_a_row = 0
        self.seq = seq
        if best == self.best:
            return False
        self.best = best
        return True


def join_symbol(
    book: BookTopic, siblings: list[BookTopic], fusions: dict[tuple[str, str], BboFusion]
) -> None:
    """Add a new ordinary book to its symbol's books (``siblings``, of one category);
    fuse depth 1 into the bbo when the symbol also has a deeper book (docs/wire-format).

    ``fusions`` holds the symbols configured fused; a symbol seen at both depths without
    being configured so is fused here, when it happens.
    """
    key = (book.category, book.symbol)
    siblings.append(book)
    fusion = fusions.get(key)
    if fusion is None:
        depths = {b.order_book.max_depth for b in siblings}
        if 1 not in depths or len(depths) < 2:
            return
        fusion = fusions[key] = BboFusion()
        # Carry on from the bbo the deeper book published alone (rare: once per symbol).
        for sibling in siblings:
            if sibling.last_bbo is not None:
                fusion.seq = orjson.loads(sibling.last_bbo)["bybit_seq"]
                fusion.best = sibling.last_best
                fusion.last_bbo, sibling.last_bbo = sibling.last_bbo, None
    for sibling in siblings:
        sibling.fusion = fusion
        if sibling.order_book.max_depth == 1:
            sibling.feed = "bbo"  # book messages stay the deep book's alone

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

When none of the symbol's books is live any more (both resyncing, or stale after their
ingestor vanished), :meth:`BboFusion.reset` forgets the ``seq``: a Bybit restart is allowed
to start the sequence lower, and the next snapshot then brings the ``bbo`` back.
"""

from __future__ import annotations

__all__ = ["BboFusion"]


class BboFusion:
    """The freshest-``seq`` rule of one symbol's fused ``bbo`` (sans-I/O)."""

    __slots__ = ("best", "last_bbo", "older", "seq")

    def __init__(self) -> None:
        self.seq = -1  # seq of the freshest top taken; -1: none since the last reset
        self.best: tuple[str | None, str | None] | None = None  # last published top
        self.last_bbo: bytes | None = None  # last published payload (snapshot service)
        self.older = 0  # tops refused because their seq was not newer

    def offer(self, seq: int, best: tuple[str | None, str | None]) -> bool:
        """A book's top after a frame with Bybit ``seq``: True if it is to be published."""
        if seq <= self.seq:
            self.older += 1
            return False
        self.seq = seq
        if best == self.best:
            return False
        self.best = best
        return True

    def reset(self) -> None:
        """No book of the symbol is live: the next top is taken whatever its ``seq``."""
        self.seq = -1
        self.best = None
        self.last_bbo = None

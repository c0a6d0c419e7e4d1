"""The book of one Bybit ``orderbook.full.{symbol}`` topic: REST snapshot plus buffered deltas.

Bybit's full book (docs: "Full Orderbook", spot since 2026-07-16, futures later) pushes
**deltas only**, every 200 ms, with no snapshot on the socket: the book starts from the REST
snapshot ``GET /v5/market/full_orderbook`` (up to 10,000 levels a side), which carries the
``u`` and ``seq`` of the delta it includes. Bybit's synchronisation procedure, as this state
machine implements it:

1. Buffer the deltas. A hole in ``u`` between buffered deltas (or ``u = 1``) empties the
   buffer and buffering restarts from that delta; a delta whose ``seq`` went down is dropped.
2. Take a snapshot (the shell fetches it when asked, see the outcomes):

   - its ``seq`` is below the first buffered delta's: too old, fetch again;
   - buffered deltas with a smaller ``seq`` are dropped (the snapshot includes them);
   - the snapshot fits when the first remaining delta is the one it includes (same ``seq``
     and ``u``) or the next one (``u`` one more); a same ``seq`` with another ``u``, or a
     later delta, means fetch again;
   - with nothing buffered (a quiet market) the snapshot is taken as is: the next delta
     must then be its ``u + 1``.

3. Apply the remaining buffered deltas, then every new one: a ``seq`` lower than the last
   one taken is an old delta (dropped, even with the next ``u``), ``u <= last_u`` a duplicate,
   ``u > last_u + 1`` a gap, ``u = 1`` a reset (Bybit restarted, delisted, auctioned or
   changed the tick/lot size): the book is dropped and buffering starts again with that
   delta. A crossed book is dropped the same way.

Outcomes are :class:`mdgw.core.book.BookOutcome`'s: ``RESET`` when a snapshot made the book live,
``APPLIED``, ``DUPLICATE``, ``GAP``, ``CROSSED``; ``NOT_SYNCED`` for a delta buffered while
no usable snapshot is in, and for a snapshot that does not fit (:attr:`FullBook.wants_snapshot`
is then true: the shell fetches another one). Levels live in an :class:`OrderBook` of
:data:`FULL_DEPTH` levels a side; the buffer holds at most :data:`MAX_BUFFERED` deltas (the
oldest go first; a snapshot that then no longer fits is simply fetched again).
"""

from __future__ import annotations

from collections import deque

from mdgw.core.book import BookOutcome, OrderBook
from mdgw.core.bybit import BookFrame
from mdgw.core.bybit_spec import FULL_DEPTH

__all__ = ["MAX_BUFFERED", "FullBook"]

MAX_BUFFERED = 600  # deltas: two minutes at Bybit's 200 ms


class FullBook:
    """One ``orderbook.full`` topic: a buffer of deltas until a snapshot fits, then a book."""

    __slots__ = ("_book", "_buffer", "_last_seq", "last_frame", "wants_snapshot")

    def __init__(self, max_depth: int = FULL_DEPTH) -> None:
        self._book = OrderBook(max_depth)
        self._buffer: deque[BookFrame] = deque(maxlen=MAX_BUFFERED)
        self.wants_snapshot = True  # no book: a snapshot is needed
        self._last_seq = 0  # seq of the last frame the live book took in
        # The last frame the book took in: after a sync, the last buffered delta applied on
        # the snapshot (its u, ts and seq describe the book), else the snapshot.
        self.last_frame: BookFrame | None = None

    # The OrderBook face the hub publishes from.
    @property
    def live(self) -> bool:
        return self._book.live

    @property
    def last_u(self) -> int | None:
        return self._book.last_u

    @property
    def max_depth(self) -> int:
        return self._book.max_depth

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def top_json(self, n: int) -> tuple[str, str]:
        return self._book.top_json(n)

    def level_texts(self) -> tuple[list[str], list[str]]:
        return self._book.level_texts()

    def best_json(self) -> tuple[str | None, str | None]:
        return self._book.best_json()

    def best_bid(self) -> tuple[str, str] | None:
        return self._book.best_bid()

    def best_ask(self) -> tuple[str, str] | None:
        return self._book.best_ask()

    def top_bids(self, n: int) -> list[tuple[str, str]]:
        return self._book.top_bids(n)

    def top_asks(self, n: int) -> list[tuple[str, str]]:
        return self._book.top_asks(n)

    def invalidate(self) -> None:
        """Forget the book and the buffer (a new connection): start over."""
        self._book.invalidate()
        self._buffer.clear()
        self.wants_snapshot = True

    def apply(self, frame: BookFrame) -> BookOutcome:
        if frame.snapshot:
            return self._snapshot(frame)
        return self._delta(frame)

    # ------------------------------------------------------------------------- deltas

    def _delta(self, frame: BookFrame) -> BookOutcome:
        book = self._book
        if not book.live:
            self._buffer_delta(frame)
            return BookOutcome.NOT_SYNCED
        last_u = book.last_u
        assert last_u is not None  # live implies a u
        if frame.seq < self._last_seq:
            # seq went down: an older delta (a replay from before a reset that happens to
            # carry the next u). Bybit: discard it.
            return BookOutcome.DUPLICATE
        if frame.u == 1 or frame.u > last_u + 1:
            self._restart(frame)
            return BookOutcome.GAP
        if frame.u <= last_u:
            return BookOutcome.DUPLICATE
        outcome = book.apply_delta(frame.u, frame.bids, frame.asks)
        self._last_seq = frame.seq
        self.last_frame = frame
        if outcome is BookOutcome.CROSSED:
            self._restart(None)
        return outcome

    def _buffer_delta(self, frame: BookFrame) -> None:
        buffer = self._buffer
        if buffer:
            last = buffer[-1]
            if frame.seq and frame.seq < last.seq:
                return  # seq went down: Bybit says discard it
            if frame.u == 1 or frame.u != last.u + 1:
                buffer.clear()  # a hole (or a reset): start buffering again from here
        buffer.append(frame)

    def _restart(self, frame: BookFrame | None) -> None:
        self._book.invalidate()
        self._buffer.clear()
        self.wants_snapshot = True
        if frame is not None:
            self._buffer.append(frame)

    # ---------------------------------------------------------------------- snapshot

    def _snapshot(self, snap: BookFrame) -> BookOutcome:
        buffer = self._buffer
        if buffer and snap.seq < buffer[0].seq:
            self.wants_snapshot = True
            return BookOutcome.NOT_SYNCED  # too old for what is buffered: fetch again
        while buffer and buffer[0].seq < snap.seq:
            buffer.popleft()
        if buffer:
            first = buffer[0]
            if first.seq == snap.seq and first.u == snap.u:
                buffer.popleft()  # the snapshot includes it
            elif first.u != snap.u + 1:
                self.wants_snapshot = True
                return BookOutcome.NOT_SYNCED
        book = self._book
        outcome = book.apply_snapshot(snap.u, snap.bids, snap.asks)
        if outcome is not BookOutcome.RESET:
            self._restart(None)
            return outcome
        self._last_seq = snap.seq
        self.last_frame = snap
        while buffer:
            delta = buffer.popleft()
            self._last_seq = delta.seq
            self.last_frame = delta
            outcome = book.apply_delta(delta.u, delta.bids, delta.asks)
            if outcome is not BookOutcome.APPLIED:
                # The buffer was contiguous and follows the snapshot: only a crossed book
                # lands here. Start over.
                self._restart(None)
                return BookOutcome.CROSSED
        self.wants_snapshot = False
        return BookOutcome.RESET

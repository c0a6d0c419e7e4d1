"""The hub's single-source books: ``orderbook.rpi`` and ``orderbook.full``.

These books are not arbitrated (:mod:`mdgw.core.arbiter`): Bybit's ``u`` of an RPI or a full
book is per connection stream, so a book follows the one connection (``BookTopic.source``)
that delivered its snapshot, or that feeds the full book's sync in progress.
"""

from __future__ import annotations

from typing import cast

from mdgw.core.book import BookOutcome
from mdgw.core.bybit import FullFrame, RpiFrame
from mdgw.core.full_book import FullBook
from mdgw.core.hub_books import HubBooks
from mdgw.core.hub_state import BookTopic
from mdgw.core.rpi_book import RpiBook

__all__ = ["SingleSourceBooks"]


class SingleSourceBooks(HubBooks):
    """The RPI and full-book frame paths of the hub."""

    def _on_rpi(
        self, category: str, source: tuple[str, int], recv_ns: int, frame: RpiFrame, now: float
    ) -> None:
        """``orderbook.rpi``: the book takes deltas only from the connection that delivered
        its snapshot; a delta from another connection invalidates it (a stream with
        ``connections`` > 1 subscribes RPI books once)."""
        book = self._frame_book(category, source, frame, now)
        if book is None:
            return
        if frame.snapshot or book.source == source:
            # The topic names the kind: an RpiFrame only reaches an RpiBook (mypyc checks).
            outcome = cast(RpiBook, book.order_book).apply(frame)
        else:
            # A delta from a connection that did not deliver this book's snapshot:
            # it cannot continue our sequence (Bybit's u is per connection stream).
            book.order_book.invalidate()
            outcome = BookOutcome.NOT_SYNCED
        if outcome is BookOutcome.APPLIED or outcome is BookOutcome.RESET:
            if frame.snapshot:
                book.source = source
            self._publish(book, frame, frame.snapshot, recv_ns, now)
            return
        if outcome is BookOutcome.DUPLICATE:
            self.stats.duplicates += 1
            return
        reason = self._broken_reason(outcome, frame.u)
        if reason is None:
            self.stats.not_synced += 1
            reason = "delta before snapshot"
        self._resync(book, reason, now, recv_ns=recv_ns)

    def _on_full(
        self, category: str, source: tuple[str, int], recv_ns: int, frame: FullFrame, now: float
    ) -> None:
        """``orderbook.full``: deltas are buffered until the REST snapshot the ingestor
        fetches (asked for with a resync request) fits them (:mod:`mdgw.core.full_book`)."""
        book = self._frame_book(category, source, frame, now)
        if book is None:
            return
        full = cast(FullBook, book.order_book)
        if book.source != source:
            # Deltas and the snapshot of one sync come over one connection; another
            # connection starts the sync over.
            if book.source is not None:
                full.invalidate()
            book.source = source
            # Its REST snapshot must come over this connection, and nothing brings it
            # unasked (a resubscribe brings a full book deltas only): ask it now, not a
            # resync_timeout after the connection before it closed. A request already made
            # in this episode still holds back the next by resync_min_interval.
            book.episode_requested = False
            if book.episode_requests == 0:
                book.requested_at = None
        outcome = full.apply(frame)
        if outcome is BookOutcome.APPLIED or outcome is BookOutcome.RESET:
            self._publish(book, full.last_frame or frame, frame.snapshot, recv_ns, now)
            return
        if outcome is BookOutcome.DUPLICATE:
            self.stats.duplicates += 1
            return
        reason = self._broken_reason(outcome, frame.u)
        if reason is None:  # not synced
            if frame.snapshot:
                self.stats.not_synced += 1
                reason = "REST snapshot does not fit the buffered deltas"
            else:
                reason = "waiting for the REST snapshot"
        # The buffer is the sync in progress: keep it (invalidate=False), ask for a snapshot.
        self._resync(book, reason, now, recv_ns=recv_ns, invalidate=False, keep_source=True)
        if frame.snapshot and full.wants_snapshot:
            book.episode_requested = False  # a snapshot that does not fit: fetch another

    def _frame_book(
        self, category: str, source: tuple[str, int], frame: RpiFrame | FullFrame, now: float
    ) -> BookTopic | None:
        """The book ``frame`` is for, with the frame counted; None past the topic cap."""
        book = self._book_for(category, frame.topic, frame.symbol, frame.depth, now)
        if book is not None:
            book.ingestor = source[0]
            book.last_frame_at = now
            book.frames += 1
        return book

    def _broken_reason(self, outcome: BookOutcome, u: int) -> str | None:
        """Count a gap or a crossed book, and say so (the resync's reason); None otherwise."""
        if outcome is BookOutcome.GAP:
            self.stats.gaps += 1
            # A full book's buffer starts over when Bybit restarts its u at 1.
            return "u reset to 1" if u == 1 else f"u gap at u={u}"
        if outcome is BookOutcome.CROSSED:
            self.stats.crossed += 1
            return f"crossed book at u={u}"
        return None

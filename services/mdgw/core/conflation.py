"""Conflation (``books.max_rate`` > 0): which books have a publish pending, and when it is due.

A book publishes at most ``max_rate`` times a second. Every frame is still applied and
checked as it arrives; a frame that comes less than ``1 / max_rate`` after the book's last
publish only marks the book pending (:meth:`Conflation.defer`), and the hub publishes the
book as it stands when its interval has passed (:meth:`Conflation.due`), with the ``u``,
``ts`` and ``cts`` of the last frame applied: latest wins. A book that stops being live
drops what was pending.
"""

from __future__ import annotations

from mdgw.core.bybit import BookFrame, RpiFrame
from mdgw.core.hub_state import BookTopic, State

__all__ = ["Conflation"]


class Conflation:
    """The pending books of one hub and the earliest time one of them is due."""

    def __init__(self, max_rate: float) -> None:
        if max_rate < 0:
            raise ValueError(f"max_rate must be >= 0, got {max_rate}")
        # Seconds between two publishes of one book; 0.0: every frame is published.
        self.min_interval = 1.0 / max_rate if max_rate else 0.0
        self.next_due: float | None = None  # earliest pending publish (monotonic s)
        # Books that may have a publish pending, by (category, Bybit topic).
        self._pending: dict[tuple[str, str], BookTopic] = {}

    def defer(self, book: BookTopic, frame: BookFrame | RpiFrame, recv_ns: int) -> None:
        """``frame`` was applied before the book's interval passed: publish it later."""
        if book.pending is None:
            self._pending[(book.category, book.bybit_topic)] = book
            due = book.next_publish_at
            if self.next_due is None or due < self.next_due:
                self.next_due = due
        book.pending = frame
        book.pending_recv_ns = recv_ns

    def due(self, now: float) -> list[tuple[BookTopic, BookFrame | RpiFrame, int]]:
        """Take every pending book whose interval has passed: ``(book, frame, recv_ns)``.

        The caller publishes each; a book no longer live is dropped. Updates
        :attr:`next_due`: the time of the earliest publish still pending, or None.
        """
        if self.next_due is None or now < self.next_due:
            return []
        taken: list[tuple[BookTopic, BookFrame | RpiFrame, int]] = []
        waiting: dict[tuple[str, str], BookTopic] = {}
        next_due: float | None = None
        for key, book in self._pending.items():
            frame = book.pending
            if frame is None or book.state is not State.LIVE:
                book.pending = None
                continue
            if now < book.next_publish_at:
                waiting[key] = book
                if next_due is None or book.next_publish_at < next_due:
                    next_due = book.next_publish_at
                continue
            book.pending = None
            taken.append((book, frame, book.pending_recv_ns))
        self._pending = waiting
        self.next_due = next_due
        return taken

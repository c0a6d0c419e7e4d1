"""The hub's sources: ingestor connections opening, losing frames, closing, and their counters.

A source is one ingestor connection, ``(ingestor, conn_id)`` (:class:`~mdgw.core.arbiter.Source`).
Losing one costs nothing while another source can continue its books; a book no source can
continue resyncs. Counters are kept per named source (``ingestor/slot``), across reconnects.
"""

from __future__ import annotations

from mdgw.core import wire
from mdgw.core.arbiter import Source, SourceStats
from mdgw.core.bybit import OrderbookTopic, parse_book_topic
from mdgw.core.bybit_spec import RPI_DEPTH, RPI_TOPIC_PREFIX
from mdgw.core.errors import ParseError
from mdgw.core.hub_state import State
from mdgw.core.single_source import SingleSourceBooks

__all__ = ["HubSources"]

# Named sources (ingestor/connection) whose counters are kept; beyond it new names share one.
_MAX_SOURCE_NAMES = 1024


class HubSources(SingleSourceBooks):
    """What the hub does when a source opens, loses frames or goes."""

    def _on_malformed(
        self, category: str, src: Source, exc: ParseError, size: int, now: float
    ) -> None:
        """A frame that did not parse: its source lost it, and the book it names may resync."""
        self.stats.malformed += 1
        topic = exc.topic
        self.events.append(
            (
                "malformed_frame",
                {
                    "category": category,
                    "topic": topic,
                    "reason": exc.reason,
                    "size": size,
                    "ingestor": src.ingestor,
                    "conn_id": src.conn_id,
                    "source": src.name,
                },
            )
        )
        if topic is None or not topic.startswith("orderbook."):
            return
        book = self._books.get((category, topic))
        if book is None:
            parsed: OrderbookTopic | None
            if topic.startswith(RPI_TOPIC_PREFIX):
                symbol = topic[len(RPI_TOPIC_PREFIX) :]
                parsed = OrderbookTopic(symbol, RPI_DEPTH) if wire.is_topic_symbol(symbol) else None
            else:
                parsed = parse_book_topic(topic)
            if parsed is None or len(self._books) >= self._max_topics:
                return
            book = self._new_book(category, topic, parsed.symbol, parsed.depth, now)
        # The frame is lost: that source cannot continue this book until its next frame.
        book.arb.mark_lost(src)
        if book.arb.synced and book.arb.can_continue():
            src.stats.failovers += 1
            self.stats.failovers += 1
            return
        self._resync(book, "malformed frame", now)

    def _on_seq_hole(self, src: Source, last: int, seq: int, now: float) -> None:
        """A hole in a source's envelope sequence: the frames it lost may be any of its books'."""
        self.stats.seq_holes += 1
        src.stats.seq_holes += 1
        lost = seq - last - 1 if seq > last else 0
        self.stats.frames_lost += lost
        # We cannot know which topics the lost frames belonged to: every book fed by this
        # source may have missed a delta. It resyncs unless another source can continue it.
        kept, resynced = self._continue_without(src, "ingestor sequence hole", now, gone=False)
        self.events.append(
            (
                "sequence_hole",
                {
                    "ingestor": src.ingestor,
                    "conn_id": src.conn_id,
                    "source": src.name,
                    "expected": last + 1,
                    "got": seq,
                    "books_kept": kept,
                    "books_resynced": resynced,
                },
            )
        )

    def _new_source(self, key: tuple[str, int], slot: str) -> Source:
        name = f"{key[0]}/{slot}"
        stats = self._source_stats.get(name)
        if stats is None:
            if len(self._source_stats) >= _MAX_SOURCE_NAMES:
                name = f"{key[0]}/other"
                stats = self._source_stats.setdefault(name, SourceStats())
            else:
                stats = self._source_stats[name] = SourceStats()
        src = Source(key[0], key[1], name, stats)
        self._conns[key] = src
        return src

    def _source_gone(self, src: Source, reason: str, now: float) -> None:
        """A source's connection closed or its ingestor died: its books go on without it."""
        src.alive = False
        kept, _ = self._continue_without(src, reason, now, gone=True)
        if kept:
            self.events.append(
                ("source_failover", {"source": src.name, "reason": reason, "books_kept": kept})
            )
        src.arbiters.clear()

    def _continue_without(
        self, src: Source, reason: str, now: float, *, gone: bool
    ) -> tuple[int, int]:
        """Every book ``src`` fed, now that it lost frames (or is ``gone``): each goes on where
        another source can continue it, else resyncs. Returns (books kept, books resynced)."""
        kept = resynced = 0
        for arb in src.arbiters:
            if gone:
                arb.remove(src)
            else:
                arb.mark_lost(src)
            if not arb.synced:
                continue
            if arb.can_continue():
                kept += 1
                continue
            resynced += 1
            # A source gone: its ingestor reconnects and resubscribes by itself (or another
            # ingestor serves the topic): ask only if no snapshot comes within resync_timeout.
            self._resync(self._books[arb.key], reason, now, ask=not gone)
        key = (src.ingestor, src.conn_id)
        for book in self._books.values():
            # A single-source book (rpi, full) this connection fed.
            if book.source == key and not (gone and book.state is State.RESYNCING):
                resynced += 1
                self._resync(book, reason, now, ask=not gone)
        if kept:
            src.stats.failovers += 1
            self.stats.failovers += kept
        return kept, resynced

    def source_stats(self) -> dict[str, SourceStats]:
        """Counters per named source (``ingestor/slot``), kept across reconnects.

        The stats line reports them; a metrics exporter may read them too (they only grow,
        except ``lag_ns_max``, which :meth:`reset_lag_max` clears).
        """
        return self._source_stats

    def live_sources(self) -> dict[str, int]:
        """How many open connections each source name has now."""
        counts: dict[str, int] = {}
        for src in self._conns.values():
            counts[src.name] = counts.get(src.name, 0) + 1
        return counts

    def reset_lag_max(self) -> None:
        """Clear every source's ``lag_ns_max`` (a new stats interval starts)."""
        for stats in self._source_stats.values():
            stats.lag_ns_max = 0

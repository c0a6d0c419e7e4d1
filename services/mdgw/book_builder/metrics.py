"""book_builder's ``/metrics`` and ``/health`` (docs/operations.md lists both).

Nothing here runs per message. The hub already counts what the metrics need (per book:
frames, books published, resync episodes by reason, the time of its last state change); a
scrape or health probe takes one copy of those on the event loop (:meth:`snapshot`, a
callback between two drain batches, tens of microseconds for a hundred books) and builds
the Prometheus families and the JSON in the HTTP thread. The recv -> pub latencies the hub
already samples for its stats line are folded into a histogram on the hub's 100 ms tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mdgw.book_builder.feed_metrics import (
    SourceRow,
    maintenance_body,
    maintenance_families,
    source_families,
    source_rows,
    sources_body,
)
from mdgw.core.bybit import StatusNotice
from mdgw.core.hub import BookRow, State
from mdgw.runtime.metrics import (
    PUBLISH_LATENCY_BOUNDS,
    Buckets,
    LoopViews,
    MetricsEndpoint,
    health_verdict,
    histogram_family,
)

if TYPE_CHECKING:
    from mdgw.book_builder.service import BookBuilder

__all__ = ["RESYNC_REASONS", "BuilderMetrics", "BuilderView", "health_of"]

# The reason label of mdgw_book_resyncs_total (mdgw.core.hub.resync_label); every book
# exports all of them from the start, so the first resync is an increase from 0.
RESYNC_REASONS: Final = (
    "gap",
    "crossed",
    "not_synced",
    "malformed",
    "seq_hole",
    "connection_closed",
    "ingestor_silent",
)
STATES: Final = tuple(s.value for s in State)
# Hub counters exported as mdgw_builder_events_total{event} (the stats line has them all).
_EVENTS: Final = (
    "bad_envelopes",
    "malformed",
    "unsupported",
    "duplicates",
    "gaps",
    "crossed",
    "not_synced",
    "seq_holes",
    "frames_lost",
    "resync_requests",
    "reconnect_requests",
    "conn_up",
    "conn_down",
    "ingestors_lost",
    "trades_dup",
    "topics_refused",
)

# JournalStats counters exported as mdgw_journal_* (name, JournalStats field, help).
_JOURNAL_COUNTERS: Final = (
    ("mdgw_journal_errors_total", "errors", "journal write or rotate failures"),
    (
        "mdgw_journal_holes_total",
        "holes",
        "hand-overs left out of the journal (its writer was behind the feed)",
    ),
    ("mdgw_journal_records_lost_total", "records_lost", "hub inputs left out by those holes"),
    ("mdgw_journal_records_total", "records", "hub inputs handed to the journal's writer"),
    ("mdgw_journal_bytes_written_total", "bytes_written", "journal bytes written (compressed)"),
    ("mdgw_journal_segments_total", "segments", "journal segments opened"),
)


@dataclass(frozen=True, slots=True)
class BuilderView:
    """One consistent copy of the builder's state, taken on the event loop."""

    now: float  # monotonic
    books: list[BookRow]
    trade_frames: dict[str, int]
    ingestors: dict[str, float]  # id -> monotonic time last heard
    stats: dict[str, int]
    pub_dropped: int
    snapshots_served: int
    snapshots_rejected: int
    internal_errors: int
    journal: dict[str, int] | None = None  # JournalStats.as_dict(); None: journal off
    sources: list[SourceRow] = field(default_factory=list)
    # Bybit's system.status notices by phase ("active", "planned"): see feed_metrics
    maintenance: dict[str, list[StatusNotice]] = field(default_factory=dict)


def book_key(row: BookRow) -> str:
    return f"{row.category}.{row.symbol}.{row.depth}"


def health_of(view: BuilderView, unhealthy_after: float) -> tuple[bool, dict[str, Any]]:
    """The /health verdict and body.

    Unhealthy when no ingestor is connected, or when any book has not been live for
    ``unhealthy_after`` seconds: a book that is new, resyncing or stale for that long, or a
    live one whose last frame is that old (the exchange fell silent). ``sources`` and
    ``maintenance`` are information: they never make it unhealthy.
    """
    now = view.now
    books: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for row in view.books:
        age = round(now - row.last_frame_at, 3) if row.last_frame_at else None
        in_state = round(now - row.since, 3)
        key = book_key(row)
        books[key] = {"state": row.state.value, "age_s": age, "u": row.u, "state_s": in_state}
        if row.state is State.LIVE:
            if age is not None and age >= unhealthy_after:
                problems.append(f"{key}: no frame for {age:.1f}s")
        elif row.state is State.STALE or in_state >= unhealthy_after:
            problems.append(f"{key}: {row.state.value} for {in_state:.1f}s")
    ingestors = {
        name: {"last_seen_s": round(now - seen, 3)} for name, seen in sorted(view.ingestors.items())
    }
    if not ingestors:
        problems.append("no ingestor connected")
    fields = {
        "books": books,
        "ingestors": ingestors,
        "unhealthy_after": unhealthy_after,
        "sources": sources_body(view.sources),
        "maintenance": maintenance_body(view.maintenance),
    }
    return health_verdict(problems, fields)


def families(view: BuilderView, latency: Buckets) -> Iterable[Metric]:
    """The Prometheus families of one view."""
    frames = CounterMetricFamily(
        "mdgw_frames_total", "Bybit frames received (book and trade topics)", labels=["category"]
    )
    published = CounterMetricFamily(
        "mdgw_books_published_total", "book messages published", labels=["category"]
    )
    state = GaugeMetricFamily(
        "mdgw_book_state",
        "1 for the book's current state, 0 for the others",
        labels=["category", "symbol", "depth", "state"],
    )
    resyncs = CounterMetricFamily(
        "mdgw_book_resyncs_total",
        "times a book left the live state, by reason",
        labels=["category", "symbol", "reason"],
    )
    age = GaugeMetricFamily(
        "mdgw_book_age_seconds",
        "seconds since the book's last frame",
        labels=["category", "symbol", "depth"],
    )
    book_frames = CounterMetricFamily(
        "mdgw_book_frames_total",
        "Bybit frames received per book topic",
        labels=["category", "symbol", "depth"],
    )
    per_frames: dict[str, int] = dict(view.trade_frames)
    per_published: dict[str, int] = {}
    per_resyncs: dict[tuple[str, str, str], int] = {}
    for row in view.books:
        cat, depth = row.category, str(row.depth)
        per_frames[cat] = per_frames.get(cat, 0) + row.frames
        per_published[cat] = per_published.get(cat, 0) + row.published
        for value in STATES:
            state.add_metric(
                [cat, row.symbol, depth, value], 1.0 if row.state.value == value else 0.0
            )
        if row.last_frame_at:
            age.add_metric([cat, row.symbol, depth], max(0.0, view.now - row.last_frame_at))
        book_frames.add_metric([cat, row.symbol, depth], row.frames)
        for reason in RESYNC_REASONS:
            key = (cat, row.symbol, reason)
            per_resyncs[key] = per_resyncs.get(key, 0) + row.resyncs.get(reason, 0)
        for reason, count in row.resyncs.items():
            if reason not in RESYNC_REASONS:
                key = (cat, row.symbol, reason)
                per_resyncs[key] = per_resyncs.get(key, 0) + count
    for cat in sorted(set(per_frames) | set(per_published)):
        frames.add_metric([cat], per_frames.get(cat, 0))
        published.add_metric([cat], per_published.get(cat, 0))
    for (cat, symbol, reason), count in per_resyncs.items():
        resyncs.add_metric([cat, symbol, reason], count)
    yield from (frames, published, state, resyncs, age, book_frames)
    yield histogram_family(
        "mdgw_publish_latency_seconds",
        "book_builder receive (ingestor recv_ns) to publish, per book message (sampled "
        "like the stats line past 200,000 per stats interval)",
        [],
        [((), latency)],
    )
    yield CounterMetricFamily(
        "mdgw_pub_dropped_total",
        "messages the pub or control socket refused",
        value=view.pub_dropped,
    )
    yield CounterMetricFamily(
        "mdgw_snapshots_served_total", "snapshot requests answered", value=view.snapshots_served
    )
    yield CounterMetricFamily(
        "mdgw_snapshots_rejected_total",
        "malformed snapshot requests",
        value=view.snapshots_rejected,
    )
    yield GaugeMetricFamily(
        "mdgw_ingestors_connected",
        "ingestors heard from within books.ingestor_timeout",
        value=len(view.ingestors),
    )
    events = CounterMetricFamily(
        "mdgw_builder_events_total", "the hub's counters of unusual input", labels=["event"]
    )
    for name in _EVENTS:
        events.add_metric([name], view.stats.get(name, 0))
    events.add_metric(["internal_errors"], view.internal_errors)
    yield events
    yield from source_families(view.sources)
    yield from maintenance_families(view.maintenance)
    if view.journal is not None:
        yield from journal_families(view.journal)


def journal_families(stats: dict[str, int]) -> Iterable[Metric]:
    """The journal's families (``[journal]`` on): its JournalStats counters."""
    yield GaugeMetricFamily(
        "mdgw_journal_failed",
        "1 once the journal stopped on a write error (the books go on; it restarts with "
        "the next book_builder start)",
        value=stats["failed"],
    )
    for name, key, doc in _JOURNAL_COUNTERS:
        yield CounterMetricFamily(name, doc, value=stats[key])


class BuilderMetrics:
    """Serves a :class:`~mdgw.book_builder.service.BookBuilder`'s metrics and health."""

    def __init__(self, builder: BookBuilder, endpoint: MetricsEndpoint) -> None:
        self.builder = builder
        self.endpoint = endpoint
        self.latency = Buckets(PUBLISH_LATENCY_BOUNDS)
        self.unhealthy_after = builder.settings.metrics.unhealthy_after
        self._folded = 0
        self._started = time.monotonic()
        self._views = LoopViews(self.snapshot, self._complete)
        # Configured books the hub has not seen yet show as "new" (since the start).
        self._configured: list[tuple[str, str, int | str]] = [
            (s.category, symbol, depth)
            for s in builder.settings.bybit.streams
            for symbol in s.symbols
            for depth in ((s.depth, "rpi") if s.rpi else (s.depth,))
        ]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._views.loop = loop
        self.endpoint.start(self.collect, self.health)

    def close(self) -> None:
        self.endpoint.close()

    # ------------------------------------------------------------ on the event loop

    def fold_latencies(self) -> None:
        """Move the samples the hub took since the last fold into the histogram."""
        samples = self.builder.hub.latencies
        if self._folded > len(samples):  # cleared without latencies_cleared(): start over
            self._folded = 0
        if len(samples) > self._folded:
            self.latency.fold_ns(samples[self._folded :])
            self._folded = len(samples)

    def latencies_cleared(self) -> None:
        self._folded = 0

    def snapshot(self) -> BuilderView:
        """On the event loop: copies only (the formatting happens in the HTTP thread)."""
        builder = self.builder
        hub = builder.hub
        now_ms = time.time_ns() // 1_000_000  # Bybit's notice times are wall clock, in ms
        return BuilderView(
            now=time.monotonic(),
            books=hub.book_rows(),  # type: ignore[arg-type]  # plain tuples: see _complete
            trade_frames=hub.trade_frames(),
            ingestors=hub.ingestors(),
            stats=hub.stats.as_dict(),
            pub_dropped=builder.pub_dropped,
            snapshots_served=builder.snapshots_served,
            snapshots_rejected=builder.snapshots_rejected,
            internal_errors=builder.internal_errors,
            journal=None if builder.journal is None else builder.journal.stats.as_dict(),
            sources=source_rows(hub, builder.source_lags),
            maintenance={
                "active": hub.notices.maintenance(now_ms),
                "planned": hub.notices.planned(now_ms),
            },
        )

    def _complete(self, view: BuilderView) -> BuilderView:
        """In the HTTP thread: rows as BookRow, plus configured books not seen yet (new)."""
        rows = [BookRow._make(row) for row in view.books]
        seen = {(r.category, r.symbol, r.depth) for r in rows}
        for category, symbol, depth in self._configured:
            if (category, symbol, depth) not in seen:
                rows.append(
                    BookRow(category, symbol, depth, State.NEW, self._started, 0.0, None, 0, 0, {})
                )
        return dataclasses.replace(view, books=rows)

    # ------------------------------------------------------------ in the HTTP thread

    def collect(self) -> Iterable[Metric]:
        view = self._views.latest()
        if view is None:
            return []
        return list(families(view, self.latency))

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self._views.health(lambda view: health_of(view, self.unhealthy_after))

"""book_builder's /health verdict and /metrics families, from known views (no I/O)."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mdgw.book_builder.feed_metrics import SourceRow
from mdgw.book_builder.journal import JournalStats
from mdgw.book_builder.metrics import RESYNC_REASONS, BuilderView, families, health_of
from mdgw.core.bybit import StatusNotice
from mdgw.core.hub import BookRow, State
from mdgw.runtime.metrics import PUBLISH_LATENCY_BOUNDS, Buckets

NOW = 1000.0


def row(state: State, *, since: float = 990.0, last: float = 999.9, **more: object) -> BookRow:
    fields: dict[str, object] = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "depth": 50,
        "state": state,
        "since": since,
        "last_frame_at": last,
        "u": 42,
        "frames": 10,
        "published": 9,
        "resyncs": {},
    }
    fields.update(more)
    return BookRow(**fields)  # type: ignore[arg-type]


def view(
    *books: BookRow,
    ingestors: dict[str, float] | None = None,
    journal: dict[str, int] | None = None,
) -> BuilderView:
    return BuilderView(
        now=NOW,
        books=list(books),
        trade_frames={"linear": 5},
        ingestors={"ing": 999.5} if ingestors is None else ingestors,
        stats={"gaps": 2},
        pub_dropped=3,
        snapshots_served=4,
        snapshots_rejected=0,
        internal_errors=0,
        journal=journal,
    )


def test_steady_live_books_with_an_ingestor_are_healthy() -> None:
    healthy, body = health_of(view(row(State.LIVE)), 10.0)
    assert healthy and body["status"] == "ok" and "problems" not in body
    assert body["books"] == {
        "linear.BTCUSDT.50": {"state": "live", "age_s": 0.1, "u": 42, "state_s": 10.0}
    }
    assert body["ingestors"] == {"ing": {"last_seen_s": 0.5}}


def test_a_short_resync_is_healthy_a_long_one_is_not() -> None:
    assert health_of(view(row(State.RESYNCING, since=991.0)), 10.0)[0]
    healthy, body = health_of(view(row(State.RESYNCING, since=990.0)), 10.0)
    assert not healthy and body["status"] == "degraded"
    assert body["problems"] == ["linear.BTCUSDT.50: resyncing for 10.0s"]
    assert not health_of(view(row(State.NEW, since=985.0, last=0.0, u=None)), 10.0)[0]


def test_a_live_book_without_frames_for_unhealthy_after_is_unhealthy() -> None:
    healthy, body = health_of(view(row(State.LIVE, last=989.0)), 10.0)
    assert not healthy
    assert body["problems"] == ["linear.BTCUSDT.50: no frame for 11.0s"]
    assert not health_of(view(row(State.STALE, since=999.0)), 10.0)[0]


def test_no_ingestor_is_unhealthy() -> None:
    healthy, body = health_of(view(row(State.LIVE), ingestors={}), 10.0)
    assert not healthy and body["problems"] == ["no ingestor connected"]


def test_families_as_prometheus_text() -> None:
    latency = Buckets(PUBLISH_LATENCY_BOUNDS)
    latency.fold_ns([20_000, 300_000])
    books = (
        row(State.RESYNCING, resyncs={"gap": 2}),
        row(State.LIVE, depth=200, frames=5, published=4, resyncs={"gap": 1, "other": 1}),
    )
    registry = CollectorRegistry(auto_describe=False)

    class Collector:
        def collect(self):  # type: ignore[no-untyped-def]
            return families(view(*books), latency)

    registry.register(Collector())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("mdgw_frames_total", (("category", "linear"),))] == 10 + 5 + 5
    assert samples[("mdgw_books_published_total", (("category", "linear"),))] == 13
    state = (("category", "linear"), ("depth", "50"))
    assert (
        samples[("mdgw_book_state", (*state, ("state", "resyncing"), ("symbol", "BTCUSDT")))] == 1
    )
    assert samples[("mdgw_book_state", (*state, ("state", "live"), ("symbol", "BTCUSDT")))] == 0
    resyncs = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "mdgw_book_resyncs_total"
    }
    # Summed over the depths of a symbol; every known reason from 0, others as they come.
    assert len(resyncs) == len(RESYNC_REASONS) + 1
    key = (("category", "linear"), ("reason", "gap"), ("symbol", "BTCUSDT"))
    assert resyncs[key] == 3
    assert samples[("mdgw_publish_latency_seconds_count", ())] == 2
    assert samples[("mdgw_pub_dropped_total", ())] == 3
    assert samples[("mdgw_ingestors_connected", ())] == 1
    assert samples[("mdgw_builder_events_total", (("event", "gaps"),))] == 2


def samples_of(view: BuilderView) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)

    class Collector:
        def collect(self):  # type: ignore[no-untyped-def]
            return families(view, Buckets(PUBLISH_LATENCY_BOUNDS))

    registry.register(Collector())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_the_journal_families_follow_its_stats_and_are_absent_when_it_is_off() -> None:
    stats = JournalStats(records=7, holes=2, records_lost=3, errors=1, failed=1).as_dict()
    samples = samples_of(view(row(State.LIVE), journal=stats))
    assert samples[("mdgw_journal_failed", ())] == 1
    assert samples[("mdgw_journal_errors_total", ())] == 1
    assert samples[("mdgw_journal_holes_total", ())] == 2
    assert samples[("mdgw_journal_records_lost_total", ())] == 3
    assert samples[("mdgw_journal_records_total", ())] == 7
    assert samples[("mdgw_journal_segments_total", ())] == 0
    off = samples_of(view(row(State.LIVE)))
    assert not any(name.startswith("mdgw_journal_") for name, _ in off)


def notice(nid: str, state: str, begin: int, end: int) -> StatusNotice:
    return StatusNotice(nid, f"maintenance {nid}", state, begin, end, "", (5,), (1, 2), "1", "1")


def test_sources_and_maintenance_are_exported_and_listed_but_never_unhealthy() -> None:
    sources = [
        SourceRow("ing/linear#0", 1, 900, 80, 2, 1, 0, 3, 0.004, 0.012),
        SourceRow("ing/linear#1", 0, 80, 900, 0, 0, 1, 0, None, None),
    ]
    maintenance = {"active": [notice("n1", "ongoing", 1, 2)], "planned": []}
    base = view(row(State.LIVE))
    full = dataclasses.replace(base, sources=sources, maintenance=maintenance)
    samples = samples_of(full)
    a = (("ingestor", "ing"), ("slot", "linear#0"))
    b = (("ingestor", "ing"), ("slot", "linear#1"))
    assert samples[("mdgw_source_connections", a)] == 1
    assert samples[("mdgw_source_connections", b)] == 0
    assert samples[("mdgw_source_frames_first_total", a)] == 900
    assert samples[("mdgw_source_frames_late_total", b)] == 900
    assert samples[("mdgw_source_gaps_total", a)] == 2
    assert samples[("mdgw_source_seq_holes_total", a)] == 1
    assert samples[("mdgw_source_older_snapshots_total", b)] == 1
    assert samples[("mdgw_source_failovers_total", a)] == 3
    assert samples[("mdgw_source_lag_seconds", a)] == 0.004
    assert samples[("mdgw_source_lag_max_seconds", a)] == 0.012
    # No late copy measured in the last stats interval: no lag sample, not a made-up 0.
    assert ("mdgw_source_lag_seconds", b) not in samples
    assert samples[("mdgw_exchange_maintenance", (("phase", "active"),))] == 1
    assert samples[("mdgw_exchange_maintenance", (("phase", "planned"),))] == 0

    healthy, body = health_of(full, 10.0)
    assert healthy and body["status"] == "ok"  # a maintenance notice alone is information
    assert body["sources"]["ing/linear#0"] == {
        "connections": 1,
        "first": 900,
        "late": 80,
        "lag_ms": 4.0,
        "lag_ms_max": 12.0,
        "gaps": 2,
        "seq_holes": 1,
        "older_snapshots": 0,
        "failovers": 3,
    }
    assert body["sources"]["ing/linear#1"]["lag_ms"] is None
    assert [n["id"] for n in body["maintenance"]["active"]] == ["n1"]
    assert body["maintenance"]["active"][0]["service_types"] == [5]
    assert body["maintenance"]["planned"] == []
    # With neither, the families are there with nothing to say (phase gauges at 0).
    empty = samples_of(base)
    assert empty[("mdgw_exchange_maintenance", (("phase", "active"),))] == 0
    assert not any(name.startswith("mdgw_source_") for name, _ in empty)
    assert health_of(base, 10.0)[1]["sources"] == {}

"""book_builder's /health verdict and /metrics families, from known views (no I/O)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mdgw.book_builder.journal import JournalStats
from mdgw.book_builder.metrics import RESYNC_REASONS, BuilderView, families, health_of
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

"""mdgw top: one frame of the view, rendered to text from a known state."""

from __future__ import annotations

from mdgw.top.model import BboTracker, IngestorInput, build_view, key_of
from mdgw.top.render import render_text

HEALTH = {
    "status": "degraded",
    "books": {
        "linear.BTCUSDT.50": {"state": "live", "age_s": 0.012, "u": 4242, "state_s": 30.0},
        "inverse.BTCUSD.200": {"state": "resyncing", "age_s": 11.5, "u": None, "state_s": 11.5},
    },
    "ingestors": {"ing-1": {"last_seen_s": 0.4}},
    "problems": ["inverse.BTCUSD.200: resyncing for 11.5s"],
}
BEFORE = {
    key_of("mdgw_book_frames_total", category="linear", symbol="BTCUSDT", depth="50"): 100.0,
    key_of("mdgw_book_frames_total", category="inverse", symbol="BTCUSD", depth="200"): 7.0,
    key_of("mdgw_frames_total", category="linear"): 150.0,
    key_of("mdgw_frames_total", category="inverse"): 10.0,
    key_of("mdgw_books_published_total", category="linear"): 90.0,
}
NOW = {
    key_of("mdgw_book_frames_total", category="linear", symbol="BTCUSDT", depth="50"): 140.0,
    key_of("mdgw_book_frames_total", category="inverse", symbol="BTCUSD", depth="200"): 7.0,
    key_of("mdgw_frames_total", category="linear"): 200.0,
    key_of("mdgw_frames_total", category="inverse"): 10.0,
    key_of("mdgw_books_published_total", category="linear"): 130.0,
    key_of("mdgw_book_resyncs_total", category="inverse", symbol="BTCUSD", reason="gap"): 2.0,
    key_of("mdgw_book_resyncs_total", category="inverse", symbol="BTCUSD", reason="crossed"): 1.0,
    key_of("mdgw_ingestors_connected"): 1.0,
    key_of("mdgw_pub_dropped_total"): 0.0,
    key_of("mdgw_publish_latency_seconds_bucket", le="0.0001"): 50.0,
    key_of("mdgw_publish_latency_seconds_bucket", le="0.00025"): 99.0,
    key_of("mdgw_publish_latency_seconds_bucket", le="0.0005"): 100.0,
    key_of("mdgw_publish_latency_seconds_bucket", le="+Inf"): 100.0,
}
INGESTOR_HEALTH = {
    "status": "ok",
    "ingestor": "ing-1",
    "connections": {
        "linear#0": {"category": "linear", "state": "subscribed", "last_frame_age_s": 0.1},
        "inverse#0": {"category": "inverse", "state": "connecting", "last_frame_age_s": None},
    },
}


def view_of_known_state():  # type: ignore[no-untyped-def]
    bbo = BboTracker()
    for latency_us in range(100, 200):
        bbo.on_bbo(
            {
                "category": "linear",
                "symbol": "BTCUSDT",
                "bid": "64999.5",
                "ask": "65000.0",
                "pub_ns": 1_000_000 + latency_us * 1000,
                "recv_ns": 1_000_000,
            }
        )
    ingestor = IngestorInput(
        "http://127.0.0.1:9111",
        INGESTOR_HEALTH,
        {key_of("mdgw_ws_frames_total", category="linear"): 300.0},
        {key_of("mdgw_ws_frames_total", category="linear"): 250.0},
    )
    return build_view(
        builder_url="http://127.0.0.1:9110",
        builder_health=HEALTH,
        builder=NOW,
        builder_before=BEFORE,
        dt=2.0,
        ingestors=[ingestor],
        bbo=bbo,
    )


def test_the_view_computes_rates_spread_and_latency() -> None:
    view = view_of_known_state()
    btc = next(b for b in view.books if b.symbol == "BTCUSDT")
    assert (btc.state, btc.depth, btc.u, btc.frames_per_s) == ("live", 50, 4242, 20.0)
    assert (btc.bid, btc.ask, btc.spread) == ("64999.5", "65000.0", "0.5")
    assert (btc.p50_us, btc.p99_us) == (150.0, 198.0)
    inverse = next(b for b in view.books if b.symbol == "BTCUSD")
    assert (inverse.state, inverse.resyncs, inverse.frames_per_s) == ("resyncing", 3, 0.0)
    assert view.frames_per_s == 25.0 and view.books_per_s == 20.0
    assert view.ws_frames_per_s == 25.0
    assert view.publish_p99_ms == 0.25  # the bucket holding the 99th of 100


def test_one_frame_rendered_to_text() -> None:
    text = render_text(view_of_known_state(), width=150)
    lines = text.splitlines()
    assert (
        "mdgw top" in lines[0] and "degraded" in lines[0] and "ingestors connected: 1" in lines[0]
    )
    assert "ing-1/linear#0 subscribed 0.1s" in text and "ing-1/inverse#0 connecting" in text
    assert "frames/s in 25.0 · books/s out 20.0 · ws frames/s 25.0" in text
    assert "publish p99 <= 0.250 ms" in text and "resyncs 3" in text
    assert "! inverse.BTCUSD.200: resyncing for 11.5s" in text
    header = next(line for line in lines if "category" in line)
    for column in ("symbol", "depth", "state", "age s", "frames/s", "u", "bid", "ask", "spread"):
        assert column in header
    assert "p50 µs" in header and "p99 µs" in header and "resyncs" in header
    btc = next(line for line in lines if "BTCUSDT" in line).split()
    assert btc[:8] == ["linear", "BTCUSDT", "50", "live", "0.01", "20.0", "4242", "64999.5"]
    assert btc[8:] == ["65000.0", "0.5", "150", "198", "0"]
    inverse = next(line for line in lines if "BTCUSD " in line).split()
    assert inverse == [
        "inverse",
        "BTCUSD",
        "200",
        "resyncing",
        "11.50",
        "0.0",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "3",
    ]


def test_an_unreachable_builder_is_said_so() -> None:
    view = build_view(
        builder_url="http://127.0.0.1:1",
        builder_health=None,
        builder={},
        builder_before={},
        dt=1.0,
        ingestors=[IngestorInput("http://127.0.0.1:2", None, {}, {})],
        bbo=BboTracker(),
    )
    text = render_text(view)
    assert "unreachable" in text
    assert "! book_builder http://127.0.0.1:1: no answer" in text
    assert "! ingestor http://127.0.0.1:2: no answer" in text


def test_sources_and_a_maintenance_window_show_under_the_totals() -> None:
    health = {
        **HEALTH,
        "sources": {
            "ing-1/linear#0": {"connections": 1, "first": 70, "late": 30, "lag_ms": 0.4,
                               "gaps": 0, "failovers": 0},
            "ing-1/linear#1": {"connections": 1, "first": 30, "late": 70, "lag_ms": 2.5,
                               "gaps": 1, "failovers": 2},
            "ing-1/system-status": {"connections": 1, "first": 0, "late": 0, "lag_ms": None,
                                    "gaps": 0, "failovers": 0},
        },
        "maintenance": {
            "active": [{"id": "m1", "title": "Scheduled maintenance", "state": "ongoing",
                        "begin": 1_796_234_000_000, "end": 1_796_235_800_000}],
            "planned": [],
        },
    }  # fmt: skip
    first, late = "mdgw_source_frames_first_total", "mdgw_source_frames_late_total"
    a = {"ingestor": "ing-1", "slot": "linear#0"}
    b = {"ingestor": "ing-1", "slot": "linear#1"}
    before = {key_of(first, **a): 60.0, key_of(late, **a): 20.0,
              key_of(first, **b): 20.0, key_of(late, **b): 60.0}  # fmt: skip
    now = {key_of(first, **a): 75.0, key_of(late, **a): 25.0,
           key_of(first, **b): 25.0, key_of(late, **b): 75.0}  # fmt: skip
    view = build_view(
        builder_url="http://127.0.0.1:9110",
        builder_health=health,
        builder={**NOW, **now},
        builder_before={**BEFORE, **before},
        dt=1.0,
        ingestors=[],
        bbo=BboTracker(),
    )
    assert [s.name for s in view.sources] == ["ing-1/linear#0", "ing-1/linear#1"]
    assert view.sources[0].first_share == 0.75 and view.sources[1].failovers == 2
    text = render_text(view, width=200)
    assert "ing-1/linear#0 75% / 0.4 ms" in text
    assert "ing-1/linear#1 25% / 2.5 ms failovers 2 gaps 1" in text
    assert "system-status" not in text
    assert (
        "~ Bybit maintenance under way until 2026-12-02 18:23 UTC: Scheduled maintenance (m1)"
        in text
    )

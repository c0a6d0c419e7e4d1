"""book_builder's per-source metrics and Bybit's maintenance windows, on real processes.

One ingestor with ``connections = 2`` (an A/B feed) against the simulator, with
``system.status`` on: a skipped delta and a dropped connection on one of the two connections
show in that source's counters (and cost no resync), and a maintenance notice posted on the
simulator shows in ``mdgw_exchange_maintenance`` and in ``/health``, which stays 200.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mdgw.simulator.faults import FaultKind, FaultRequest
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import MIXED_STREAMS, Stream, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.scrape import (
    Samples,
    health,
    label_sets,
    metrics_port,
    scrape,
    value,
    wait_async,
    with_metrics,
)

pytestmark = pytest.mark.e2e

AB_STREAMS = [Stream(s.category, s.symbol, s.depth, connections=2) for s in MIXED_STREAMS]
CATEGORIES = ("linear", "inverse", "spot")
BOOK_SOURCES = {f"ingestor/{c}#{i}" for c in CATEGORIES for i in (0, 1)}
SOURCE_COUNTERS = (
    "mdgw_source_frames_first_total",
    "mdgw_source_frames_late_total",
    "mdgw_source_gaps_total",
    "mdgw_source_seq_holes_total",
    "mdgw_source_older_snapshots_total",
    "mdgw_source_failovers_total",
)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(sim_params(MIXED_STREAMS, rate=40.0)) as server:
        yield server


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def test_source_counters_follow_faults_on_one_connection_and_maintenance_shows(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    gw = with_metrics(
        Gateway(
            rundir,
            tmp_path,
            AB_STREAMS,
            ws_url=f"ws://127.0.0.1:{sim.port}/v5/public",
            sections={"bybit": {"system_status": True}, "metrics": {"unhealthy_after": 5}},
        )
    )
    gw.start()
    try:
        port = await metrics_port(gw.builder)

        async def steady() -> bool:
            status, body = await health(port)
            books = {k: s for k, s in body.get("sources", {}).items() if k in BOOK_SOURCES}
            return (
                status == 200
                and all(len(sim.conn_ids(c)) == 2 for c in CATEGORIES)
                and sum(s["connections"] for s in books.values()) == len(BOOK_SOURCES)
                and all(s["first"] + s["late"] > 0 for s in books.values())
            )

        await wait_async(steady, "/health 200, two connections per category, both up", 30)
        first = await scrape(port)
        # Every connection slot is a source, system.status's own connection too.
        for name in (*SOURCE_COUNTERS, "mdgw_source_connections"):
            sets = label_sets(first, name)
            assert {f"{s['ingestor']}/{s['slot']}" for s in sets} == {
                *BOOK_SOURCES,
                "ingestor/system-status",
            }, (name, sets)
            assert {tuple(sorted(labels)) for labels in sets} == {("ingestor", "slot")}
        assert value(first, "mdgw_exchange_maintenance", phase="active") == 0
        assert value(first, "mdgw_exchange_maintenance", phase="planned") == 0

        async def lag_measured() -> bool:
            return bool(label_sets(await scrape(port), "mdgw_source_lag_seconds"))

        # Each u comes twice; the later copy's lag shows after the next stats line (1 s).
        await wait_async(lag_measured, "mdgw_source_lag_seconds of a late source", 15)
        lagged = await scrape(port)
        for labels in label_sets(lagged, "mdgw_source_lag_seconds"):
            lag = value(lagged, "mdgw_source_lag_seconds", **labels)
            lag_max = value(lagged, "mdgw_source_lag_max_seconds", **labels)
            assert 0 <= lag <= lag_max < 5, (labels, lag, lag_max)

        # One connection of linear skips a delta, then is dropped: its source counts a gap,
        # then a failover; the other connection keeps every book live (no resync).
        resyncs = total(first, "mdgw_book_resyncs_total")
        victim = sim.conn_ids("linear")[0]
        assert sim.apply_fault(FaultRequest(FaultKind.SKIP, "linear", victim)) == 1

        async def gap_counted() -> bool:
            now = await scrape(port)
            return total(now, "mdgw_source_gaps_total") >= total(
                first, "mdgw_source_gaps_total"
            ) + 1 and any(
                value(now, "mdgw_source_gaps_total", **labels)
                > value(first, "mdgw_source_gaps_total", **labels)
                for labels in label_sets(now, "mdgw_source_gaps_total")
                if labels["slot"].startswith("linear#")
            )

        await wait_async(gap_counted, "mdgw_source_gaps_total of a linear slot + 1", 15)
        before_drop = await scrape(port)
        assert sim.apply_fault(FaultRequest(FaultKind.DROP, "linear", victim)) == 1

        async def failover_counted() -> bool:
            now = await scrape(port)
            return total(now, "mdgw_source_failovers_total") > total(
                before_drop, "mdgw_source_failovers_total"
            ) and all(
                value(now, "mdgw_source_connections", ingestor="ingestor", slot=f"linear#{i}") == 1
                for i in (0, 1)
            )

        await wait_async(failover_counted, "a failover counted, the connection back", 20)
        after = await scrape(port)
        assert total(after, "mdgw_book_resyncs_total") == resyncs
        assert total(after, "mdgw_source_frames_first_total") > total(
            first, "mdgw_source_frames_first_total"
        )

        # Bybit announces a window, then starts it: planned, then active; /health stays 200.
        now_ms = int(time.time() * 1000)

        def post(state: str, begin_ms: int, end_ms: int) -> None:
            sim.post_notice(
                notice_id="m1",
                state=state,
                begin_ms=begin_ms,
                end_ms=end_ms,
                title="Scheduled maintenance",
            )

        post("scheduled", now_ms + 3_600_000, now_ms + 7_200_000)

        async def planned() -> bool:
            return value(await scrape(port), "mdgw_exchange_maintenance", phase="planned") == 1

        await wait_async(planned, "mdgw_exchange_maintenance{phase=planned} 1", 15)
        post("ongoing", now_ms, now_ms + 600_000)

        async def active() -> bool:
            now = await scrape(port)
            return (
                value(now, "mdgw_exchange_maintenance", phase="active") == 1
                and value(now, "mdgw_exchange_maintenance", phase="planned") == 0
            )

        await wait_async(active, "mdgw_exchange_maintenance{phase=active} 1", 15)
        status, body = await health(port)
        assert status == 200 and body["status"] == "ok", body
        (notice,) = body["maintenance"]["active"]
        assert notice["id"] == "m1" and notice["state"] == "ongoing"
        assert notice["begin"] == now_ms and notice["end"] == now_ms + 600_000
        assert body["maintenance"]["planned"] == []
        print({"sources": body["sources"], "maintenance": body["maintenance"]})

        post("completed", now_ms, now_ms + 1_000)

        async def over() -> bool:
            return value(await scrape(port), "mdgw_exchange_maintenance", phase="active") == 0

        await wait_async(over, "mdgw_exchange_maintenance{phase=active} back to 0", 15)
        assert gw.stop() == {"ingestor": 0, "book_builder": 0}
    finally:
        gw.kill()

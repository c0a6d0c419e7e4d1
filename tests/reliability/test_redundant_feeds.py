"""Redundant feeds (A/B): one topic on several connections, arbitrated by u in book_builder.

Real book_builder and ingestor processes against the in-process simulator; a consumer checks
every book against the simulator's truth, every topic's seq, and that no book's u goes back.

- one ingestor with `connections = 2`: drop, skip a delta and silence one connection only:
  no `status: resyncing`, correct books;
- both connections skip the same delta: the normal resync, asked of one connection only;
- two ingestor processes with the same config, one killed with kill -9: no resync;
- one ingestor behind a slower path (a delay relay): the books follow the faster one, and
  the slower one's late snapshot after a reconnect never rolls a book back.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from mdgw.core.hub import HOLD_GRACE
from mdgw.simulator.faults import FaultKind, FaultRequest
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import MIXED_STREAMS, Stream, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.processes import Service
from mdgw.testing.relay import DelayRelay
from mdgw.testing.truth import TruthConsumer, wait_for

pytestmark = pytest.mark.e2e

AB_STREAMS = [Stream(s.category, s.symbol, s.depth, connections=2) for s in MIXED_STREAMS]
CATEGORIES = ("linear", "inverse", "spot")
# Market steps per second per symbol. Every check here is per book (truth, seq, no rollback,
# no resync) and counts books, not seconds: the rate only paces how soon N books have come.
RATE = 160.0


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(sim_params(MIXED_STREAMS, rate=RATE)) as server:
        yield server


def resyncing_since(consumer: TruthConsumer, since_ns: int) -> list[str]:
    return [
        f"{s.key}: {s.reason}"
        for s in consumer.seen.statuses
        if s.state == "resyncing" and s.pub_ns >= since_ns
    ]


def assert_books_right(consumer: TruthConsumer) -> None:
    consumer.check()
    seen = consumer.seen
    assert not seen.wrong, seen.wrong[:5]
    assert not seen.seq_errors, seen.seq_errors[:5]
    assert not seen.published_while_not_live, seen.published_while_not_live[:5]
    assert not seen.rollbacks, seen.rollbacks[:5]
    assert seen.unverifiable < max(10, seen.books // 10)


def epoch_ns(line: dict[str, Any]) -> int:
    """A log line's ``timestamp`` (ISO 8601, UTC) in ns since the epoch."""
    stamp = datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00"))
    return int(stamp.timestamp() * 1e9)


def sources(builder: Service) -> dict[str, Any]:
    stats = builder.stats()
    return {} if stats is None else dict(stats.get("sources", {}))


async def more_books(consumer: TruthConsumer, n: int, timeout: float = 20) -> None:
    target = consumer.seen.verified + n
    await wait_for(lambda: consumer.seen.verified >= target, f"{n} more books checked", timeout)


async def started(
    gw: Gateway, consumer: TruthConsumer, sim: SimulatorServer, conns: int, *extra: Service
) -> int:
    """Start everything; wait until every book is live and ``conns`` websockets per category
    are open. Returns the time (ns) from which no resync is expected."""
    gw.start()
    for service in extra:
        service.start()
    consumer.start()
    await wait_for(lambda: consumer.all_live(gw.keys), "every book live", 30)
    await wait_for(
        lambda: all(len(sim.conn_ids(c)) == conns for c in CATEGORIES),
        f"{conns} connections per category",
        15,
    )
    await more_books(consumer, 200)
    return time.time_ns()


async def test_faults_on_one_of_two_connections_cost_no_resync(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    gw = Gateway(rundir, tmp_path, AB_STREAMS, ws_url=f"ws://127.0.0.1:{sim.port}/v5/public")
    ctx = zmq.asyncio.Context()
    consumer = TruthConsumer(ctx, gw.pub, sim, AB_STREAMS)
    try:
        live_ns = await started(gw, consumer, sim, 2)
        victims = {c: sim.conn_ids(c)[0] for c in CATEGORIES}
        # Skip a delta (three times) on one connection of every category.
        for _ in range(3):
            for category, conn_id in victims.items():
                assert sim.apply_fault(FaultRequest(FaultKind.SKIP, category, conn_id)) == 1
            await more_books(consumer, 60)
        # Silence one connection of every category (shorter than the ingestor's watchdog).
        for category, conn_id in victims.items():
            silence = FaultRequest(FaultKind.SILENCE, category, conn_id, seconds=1.5)
            assert sim.apply_fault(silence) == 1
        await more_books(consumer, 150)
        # Drop it: the ingestor reconnects; its new snapshot must not disturb the book.
        for category, conn_id in victims.items():
            assert sim.apply_fault(FaultRequest(FaultKind.DROP, category, conn_id)) == 1
        await wait_for(
            lambda: all(
                len(sim.conn_ids(c)) == 2 and victims[c] not in sim.conn_ids(c) for c in CATEGORIES
            ),
            "the dropped connections replaced",
            15,
        )
        after = time.monotonic()
        await wait_for(lambda: consumer.books_since(gw.keys, after), "books after the drop", 10)
        await more_books(consumer, 200)

        assert resyncing_since(consumer, live_ns) == []
        assert_books_right(consumer)
        per_source = sources(gw.builder)
        print(
            {
                name: (s["first"], s["late"], s["gaps"], s["failovers"])
                for name, s in per_source.items()
            }
        )
        assert sum(s["gaps"] for s in per_source.values()) >= 3  # the skipped deltas, counted
        assert sum(s["failovers"] for s in per_source.values()) >= 3  # the drops, counted
        assert all(s["first"] > 0 for s in per_source.values() if s["connections"])
        assert gw.builder.events("source_failover")
        assert gw.builder.events("source_gap")  # each skipped delta, logged with its source
        assert gw.stop() == {"ingestor": 0, "book_builder": 0}
    finally:
        await consumer.stop()
        gw.kill()
        ctx.destroy(linger=0)


async def test_both_connections_skipping_the_same_delta_resync_once(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    gw = Gateway(rundir, tmp_path, AB_STREAMS, ws_url=f"ws://127.0.0.1:{sim.port}/v5/public")
    ctx = zmq.asyncio.Context()
    consumer = TruthConsumer(ctx, gw.pub, sim, AB_STREAMS)
    topic, key = "orderbook.50.BTCUSDT", ("linear", "BTCUSDT")
    try:
        live_ns = await started(gw, consumer, sim, 2)
        skip = FaultRequest(FaultKind.SKIP, "linear", topic=topic)
        assert sim.apply_fault(skip) == 2  # both connections: the same u
        await wait_for(lambda: bool(resyncing_since(consumer, live_ns)), "status resyncing", 10)
        back = time.monotonic()
        await wait_for(lambda: consumer.books_since([key], back), "the book live again", 15)
        await more_books(consumer, 100)
        assert_books_right(consumer)
        # The request went to one connection, not to every connection carrying the topic.
        # Counted from live on: a connection's own resync while subscribing (a delta before
        # its snapshot, before every book was live) is not this fault's.
        started_ = [
            e
            for e in gw.ingestor.events("resync_started")
            if e.get("topic") == topic and epoch_ns(e) >= live_ns
        ]
        assert len(started_) == 1, started_
        assert resyncing_since(consumer, live_ns) == [f"{key}: " + started_[0]["reason"]]
        assert gw.stop() == {"ingestor": 0, "book_builder": 0}
    finally:
        await consumer.stop()
        gw.kill()
        ctx.destroy(linger=0)


async def test_two_ingestors_one_killed_costs_no_resync(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    streams: Sequence[Stream] = MIXED_STREAMS
    gw = Gateway(rundir, tmp_path, streams, ws_url=f"ws://127.0.0.1:{sim.port}/v5/public")
    second = gw.ingestor_service("ingestor-b.log", "--id", "ing-b")
    ctx = zmq.asyncio.Context()
    consumer = TruthConsumer(ctx, gw.pub, sim, streams)
    try:
        live_ns = await started(gw, consumer, sim, 2, second)
        await wait_for(
            lambda: (
                {n.split("/")[0] for n, s in sources(gw.builder).items() if s["connections"]}
                == {"ingestor", "ing-b"}
            ),
            "both ingestors feeding the builder",
            10,
        )
        gw.ingestor.signal(signal.SIGKILL)
        gw.ingestor.proc.wait()  # type: ignore[union-attr]  # started above: proc is set
        await wait_for(lambda: bool(gw.builder.events("ingestor_lost")), "ingestor_lost", 10)
        # The loss drops the killed ingestor's sources at once (a book left without one would
        # resync then); a book held for a u only the killed one had resyncs within HOLD_GRACE
        # of it. Books of every key published after both, and still no resync.
        lost = time.monotonic()
        await wait_for(
            lambda: consumer.books_since(gw.keys, lost + HOLD_GRACE + 0.2),
            "books past the loss and the hold grace",
            15,
        )
        await more_books(consumer, 100)
        assert resyncing_since(consumer, live_ns) == []
        assert_books_right(consumer)
        assert [e["ingestor"] for e in gw.builder.events("ingestor_lost")] == ["ingestor"]
        assert second.stop() == 0 and gw.builder.stop() == 0
    finally:
        await consumer.stop()
        second.kill()
        gw.kill()
        ctx.destroy(linger=0)


async def test_books_follow_the_faster_path_and_a_late_snapshot_never_rolls_back(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    # Linear only: one connection per ingestor. Both at depth 50 (pushed every 20 ms, not
    # depth 200's 100 ms): the arbitration is the same at any depth, the books come 5x as
    # often, so the N books checked below take a fraction of the time.
    streams: Sequence[Stream] = [Stream("linear", "BTCUSDT", 50), Stream("linear", "ETHUSDT", 50)]
    gw = Gateway(rundir, tmp_path, streams, ws_url=f"ws://127.0.0.1:{sim.port}/v5/public")
    ctx = zmq.asyncio.Context()
    consumer = TruthConsumer(ctx, gw.pub, sim, streams)
    async with DelayRelay(("127.0.0.1", sim.port), delay=0.3) as relay:
        slow = gw.ingestor_service("ingestor-slow.log", "--id", "slow")
        slow.env["MDGW_BYBIT__WS_URL"] = f"ws://127.0.0.1:{relay.port}/v5/public"
        try:
            gw.start()
            consumer.start()
            await wait_for(lambda: consumer.all_live(gw.keys), "every book live", 30)
            fast_ids = set(sim.conn_ids("linear"))
            slow.start()
            await wait_for(lambda: len(sim.conn_ids("linear")) == 2, "the slow connection", 15)
            slow_ids = set(sim.conn_ids("linear")) - fast_ids
            live_ns = time.time_ns()

            def both() -> dict[str, Any]:
                found = sources(gw.builder)
                fast = found.get("ingestor/linear#0", {})
                late = found.get("slow/linear#0", {})
                return (
                    {"fast": fast, "slow": late} if fast.get("first") and late.get("late") else {}
                )

            await wait_for(
                lambda: bool(both()) and both()["slow"]["lag_ms"] is not None, "lags", 15
            )
            await more_books(consumer, 200)
            seen = both()
            print(seen)
            assert seen["fast"]["first"] > 5 * seen["slow"]["first"]
            assert seen["slow"]["lag_ms"] > 150  # about the relay's 300 ms
            # A reconnect through the slow path: its snapshot is 0.3 s old when it arrives.
            for conn_id in slow_ids:
                sim.apply_fault(FaultRequest(FaultKind.DROP, conn_id=conn_id))
            await wait_for(
                lambda: (
                    (sources(gw.builder).get("slow/linear#0") or {}).get("older_snapshots", 0) >= 1
                ),
                "the slow ingestor's older snapshot dropped",
                15,
            )
            await more_books(consumer, 100)
            assert resyncing_since(consumer, live_ns) == []
            assert_books_right(consumer)
            assert slow.stop() == 0
            assert gw.stop() == {"ingestor": 0, "book_builder": 0}
        finally:
            await consumer.stop()
            slow.kill()
            gw.kill()
            ctx.destroy(linger=0)

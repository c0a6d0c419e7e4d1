"""book_builder down for a while: the ingestor holds on, the books come back within 5 s.

Real book_builder and ingestor processes against the in-process simulator, a consumer
checking every book against the truth. Two outages, each ``DOWN_S`` long (10 s; 30 s with
``RELIABILITY_LONG=1``, the issue's figure):

1. SIGSTOP: book_builder frozen with its sockets open. The ingestor's PUSH pipe fills up
   to the high-water mark (``zmq.hwm``, small here) plus the kernel's buffers, then the
   ingestor drops and counts frames; its reader never blocks.
2. SIGKILL, then a new book_builder: the PUSH has no peer and drops at once.

Each time the ingestor keeps every websocket (no reconnect, no ``connection_down``), its
memory stays bounded, and within 5 s of book_builder running again every book is live and
equal to the truth.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq.asyncio

from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import LONG, MIXED_STREAMS, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.truth import TruthConsumer, wait_for

pytestmark = pytest.mark.e2e

STREAMS = list(MIXED_STREAMS)
DOWN_S = 30.0 if LONG else 10.0
RECOVERY_BOUND_S = 5.0
HWM = 2000  # messages: a frozen builder's pipe is full after a few seconds at this rate
INGESTOR_RSS_GROWTH_MAX_KIB = 64 * 1024


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(sim_params(STREAMS, rate=80.0)) as server:
        yield server


def ingestor_counters(gw: Gateway) -> dict[str, int]:
    stats = gw.ingestor.stats()
    assert stats is not None, "the ingestor logged no stats line"
    return {
        k: stats[k] for k in ("reconnects", "attempts", "dropped", "forwarded", "connections_up")
    }


async def wait_stats_after(gw: Gateway, t_wall_ns: int) -> dict[str, int]:
    """The ingestor's counters from its first stats line logged after *t_wall_ns*."""

    def fresh() -> bool:
        stats = gw.ingestor.stats()
        return stats is not None and _ts_ns(stats["timestamp"]) > t_wall_ns

    await wait_for(fresh, "a fresh ingestor stats line", 5)
    return ingestor_counters(gw)


def _ts_ns(timestamp: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(timestamp).timestamp() * 1e9)


async def test_ingestor_holds_on_while_the_builder_is_down_and_books_recover_within_5s(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    gw = Gateway(
        rundir,
        tmp_path,
        STREAMS,
        ws_url=f"ws://127.0.0.1:{sim.port}/v5/public",
        sections={"zmq": {"hwm": HWM}, "bybit": {"ping_interval": 5, "silence_timeout": 15}},
    )
    ctx = zmq.asyncio.Context()
    consumer = TruthConsumer(ctx, gw.pub, sim, STREAMS)
    gw.start()
    consumer.start()
    try:
        await wait_for(lambda: consumer.all_live(gw.keys), "every book live", 30)
        await wait_for(lambda: consumer.seen.verified >= 300, "300 books checked", 20)
        before = await wait_stats_after(gw, time.time_ns())
        connections = before["connections_up"]
        ingestor_rss = [gw.ingestor.rss_kib()]
        recoveries: list[float] = []

        for outage in ("sigstop", "sigkill"):
            down_ns = time.time_ns()
            if outage == "sigstop":
                gw.builder.signal(signal.SIGSTOP)
            else:
                gw.builder.kill()
            await asyncio.sleep(DOWN_S)  # the outage itself, not an assertion
            during = await wait_stats_after(gw, down_ns + int(DOWN_S / 2 * 1e9))
            ingestor_rss.append(gw.ingestor.rss_kib())
            back = time.monotonic()
            recoveries.append(back)
            if outage == "sigstop":
                gw.builder.signal(signal.SIGCONT)
            else:
                gw.builder.start()
            took = await wait_for(
                lambda back=back: consumer.books_since(gw.keys, back),
                f"every book live after {outage}",
                RECOVERY_BOUND_S + 10,
            )
            print(
                f"{outage}: down {DOWN_S:g}s, ingestor dropped "
                f"{during['dropped'] - before['dropped']} frames, books live {took:.2f}s after "
                f"the builder came back, ingestor RSS {ingestor_rss[0]} -> {ingestor_rss[-1]} KiB, "
                f"consumer seq holes so far {len(consumer.seen.seq_errors)}"
            )
            assert took <= RECOVERY_BOUND_S, f"{outage}: books live only after {took:.2f}s"
            after = await wait_stats_after(gw, time.time_ns())
            # The ingestor kept every websocket, and dropped (and counted) what it could not
            # push, rather than queue it.
            assert after["reconnects"] == before["reconnects"], (outage, before, after)
            assert after["attempts"] == before["attempts"], (outage, before, after)
            assert after["connections_up"] == connections, (outage, after)
            if outage == "sigkill":  # no peer at all: every frame is dropped and counted
                assert during["dropped"] > before["dropped"], (outage, before, during)
            else:
                # Frozen builder: the pipe (hwm on both sides plus the kernel's socket
                # buffers) absorbs frames first; how many depends on frame sizes and rates,
                # so drops are not guaranteed within the window. What must hold is that the
                # reader never blocked: frames kept being handed off or dropped.
                moved = during["forwarded"] + during["dropped"]
                assert moved > before["forwarded"] + before["dropped"], (outage, before, during)
            before = after
            verified = consumer.seen.verified
            await wait_for(lambda v=verified: consumer.seen.verified >= v + 200, "more books", 20)

        assert not gw.ingestor.events("connection_down", "connect_failed", "connection_silent")
        assert max(ingestor_rss) - ingestor_rss[0] < INGESTOR_RSS_GROWTH_MAX_KIB, ingestor_rss
        consumer.check()
        seen = consumer.seen
        assert not seen.wrong, seen.wrong[:5]
        assert not seen.published_while_not_live, seen.published_while_not_live[:5]
        # A restarted builder starts every topic's seq at 1 again. A builder resumed from
        # SIGSTOP publishes its backlog in a burst that may overflow this consumer's pipe
        # (zmq.hwm is small here): holes then, and only then, are expected.
        outside = [
            error
            for error, at in zip(seen.seq_errors, seen.seq_error_at, strict=True)
            if not any(start <= at <= start + RECOVERY_BOUND_S for start in recoveries)
        ]
        assert not outside, outside[:5]
        assert seen.restarts > 0
        assert seen.unverifiable < seen.books // 10
        assert gw.stop() == {"ingestor": 0, "book_builder": 0}
    finally:
        await consumer.stop()
        gw.kill()
        ctx.destroy(linger=0)

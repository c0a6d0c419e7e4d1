"""book_builder down for a while: the ingestor holds on, the books come back within 5 s.

Real book_builder and ingestor processes against the in-process simulator, a consumer
checking every book against the truth. Two outages, each ``DOWN_S`` long (3 s; 30 s with
``RELIABILITY_LONG=1``, the issue's figure):

1. SIGSTOP: book_builder frozen with its sockets open. The ingestor's PUSH pipe fills up
   to the high-water mark (``zmq.hwm``, small here) plus the kernel's buffers, then the
   ingestor drops and counts frames; its reader never blocks.
2. SIGKILL, then a new book_builder: the PUSH has no peer and drops at once.

Each time the ingestor keeps every websocket (no reconnect, no ``connection_down``), its
memory stays bounded, and within 5 s of book_builder running again every book is live,
equal to the truth and current (at least at the u the exchange had reached when
book_builder came back; read on the publisher's clock, ``pub_ns``). Time the gateway's
processes spent waiting for a CPU held by other processes is not counted in the 5 s (on a
busy shared machine, see :func:`mdgw.testing.processes.run_queue_wait_s`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq.asyncio

from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import LONG, MIXED_STREAMS, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.processes import RunQueueWait
from mdgw.testing.truth import TruthConsumer, wait_for

pytestmark = pytest.mark.e2e

STREAMS = list(MIXED_STREAMS)
DOWN_S = 30.0 if LONG else 3.0
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

    await wait_for(fresh, "a fresh ingestor stats line", 30)
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
        await wait_for(lambda: consumer.all_live(gw.keys), "every book live", 60)
        await wait_for(lambda: consumer.seen.verified >= 300, "300 books checked", 60)
        before = await wait_stats_after(gw, time.time_ns())
        connections = before["connections_up"]
        ingestor_rss = [gw.ingestor.rss_kib()]
        recoveries: list[tuple[float, float]] = []  # monotonic: back, seen current + 5 s

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
            consumer.watch_current(gw.keys)
            back_ns = time.time_ns()
            waited = RunQueueWait(
                lambda: [os.getpid(), *(s.pid for s in (gw.builder, gw.ingestor) if s.alive)]
            )
            if outage == "sigstop":
                gw.builder.signal(signal.SIGCONT)
            else:
                gw.builder.start()
            # Generous deadline: the bound is checked below, on the publisher's clock.
            await wait_for(
                lambda waited=waited: waited.sample() and consumer.current_since() is not None,
                f"every book current after {outage}",
                RECOVERY_BOUND_S + 40,
            )
            recoveries.append((back, time.monotonic() + RECOVERY_BOUND_S))
            current_ns = consumer.current_since()
            assert current_ns is not None
            took = (current_ns - back_ns) / 1e9
            stolen = waited.at(current_ns)
            print(
                f"{outage}: down {DOWN_S:g}s, ingestor dropped "
                f"{during['dropped'] - before['dropped']} frames, books current {took:.2f}s after "
                f"the builder came back ({stolen:.2f}s of it waiting for a CPU), ingestor RSS "
                f"{ingestor_rss[0]} -> {ingestor_rss[-1]} KiB, "
                f"consumer seq holes so far {len(consumer.seen.seq_errors)}"
            )
            # The bound is on what the gateway does: time its processes (and the simulator,
            # in this one) spent runnable but waiting for a CPU that others held is not
            # counted. On a quiet machine that is ~0 and this is the plain 5 s; a slow
            # recovery of the gateway's own (a timer, a lost resync) is never excused by it.
            assert took - stolen <= RECOVERY_BOUND_S, (
                f"{outage}: books current only {took:.2f}s after the builder came back "
                f"({stolen:.2f}s waiting for a CPU)"
            )
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
            await wait_for(lambda v=verified: consumer.seen.verified >= v + 200, "more books", 60)

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
            if not any(start <= at <= end for start, end in recoveries)
        ]
        assert not outside, outside[:5]
        assert seen.restarts > 0
        assert seen.unverifiable < seen.books // 10
        assert gw.stop() == {"ingestor": 0, "book_builder": 0}
    finally:
        await consumer.stop()
        gw.kill()
        ctx.destroy(linger=0)

"""kill -9 of the ingestor: its books go `resyncing` promptly, a new ingestor brings them back.

Real book_builder and ingestor processes against the in-process simulator; a consumer checks
every book against the simulator's truth. The ingestor gets SIGKILL (no CONN_DOWN, no
goodbye): book_builder must notice on its own and publish `status: resyncing` for every
book that ingestor fed, within 4 s, and publish none of them meanwhile. A restarted
ingestor (new connection ids) brings every book live again, equal to the truth.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq.asyncio

from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import MIXED_STREAMS, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.truth import TruthConsumer, wait_for

pytestmark = pytest.mark.e2e

STREAMS = list(MIXED_STREAMS)
DETECTION_BOUND_S = 4.0  # the bound for "promptly"


# Market steps per second per symbol: the checks are per book and count books, so the rate
# only paces them (each depth topic still sends at most one message per push interval).
RATE = 160.0


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(sim_params(STREAMS, rate=RATE)) as server:
        yield server


async def test_ingestor_kill_9_is_detected_within_4s_and_a_new_one_recovers(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    gw = Gateway(rundir, tmp_path, STREAMS, ws_url=f"ws://127.0.0.1:{sim.port}/v5/public")
    ctx = zmq.asyncio.Context()
    consumer = TruthConsumer(ctx, gw.pub, sim, STREAMS)
    gw.start()
    consumer.start()
    try:
        await wait_for(lambda: consumer.all_live(gw.keys), "every book live", 30)
        await wait_for(lambda: consumer.books_since(gw.keys, 0.0), "books for every symbol", 10)
        await wait_for(lambda: consumer.seen.verified >= 300, "300 books checked", 20)

        killed_ns = time.time_ns()
        gw.ingestor.signal(signal.SIGKILL)
        gw.ingestor.proc.wait()  # type: ignore[union-attr]
        await wait_for(
            lambda: all(consumer.first_status(k, "resyncing", killed_ns) for k in gw.keys),
            "status resyncing for every book of the killed ingestor",
            DETECTION_BOUND_S + 6,
        )
        detection = {
            k: (consumer.first_status(k, "resyncing", killed_ns).pub_ns - killed_ns) / 1e9  # type: ignore[union-attr]
            for k in gw.keys
        }
        reasons = {consumer.first_status(k, "resyncing", killed_ns).reason for k in gw.keys}  # type: ignore[union-attr]
        print(f"ingestor loss detected after {max(detection.values()):.3f}s: {reasons}")
        assert max(detection.values()) <= DETECTION_BOUND_S, detection
        lost = gw.builder.events("ingestor_lost")
        assert lost, "book_builder logged no ingestor_lost"

        restarted = time.monotonic()
        gw.ingestor.start()
        took = await wait_for(
            lambda: consumer.books_since(gw.keys, restarted),
            "every book live again after the restart",
            15,
        )
        print(f"books live again {took:.2f}s after the ingestor restart")
        verified = consumer.seen.verified
        await wait_for(lambda: consumer.seen.verified >= verified + 300, "300 more books", 20)

        consumer.check()
        seen = consumer.seen
        assert not seen.wrong, seen.wrong[:5]
        assert not seen.published_while_not_live, seen.published_while_not_live[:5]
        assert not seen.seq_errors, seen.seq_errors[:5]
        assert seen.unverifiable < seen.books // 10
        assert gw.stop() == {"ingestor": 0, "book_builder": 0}
    finally:
        await consumer.stop()
        gw.kill()
        ctx.destroy(linger=0)

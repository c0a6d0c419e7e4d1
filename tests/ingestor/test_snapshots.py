"""mdgw.ingestor.snapshots against the simulator's REST endpoint (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest

from mdgw.core.backoff import Backoff
from mdgw.core.bybit import BookFrame, decode_frame
from mdgw.ingestor.snapshots import MAX_ATTEMPTS, SnapshotFetcher
from mdgw.runtime.logging import get_logger
from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.server import SimulatorServer

TOPIC = "orderbook.full.BTCUSDT"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    params = SimulatorParams(streams={"spot": ("BTCUSDT",)}, port=0, levels=1000)
    async with SimulatorServer(params) as server:
        yield server


def fetcher(sim: SimulatorServer, *, per_second: float = 50.0) -> SnapshotFetcher:
    return SnapshotFetcher(
        rest_url=sim.http_url,
        timeout=0.5,
        max_per_second=per_second,
        backoff=lambda: Backoff(0.05, 0.2, rng=random.Random(1).random),
        log=get_logger(),
    )


async def run_until(fetch: SnapshotFetcher, done: asyncio.Event, timeout: float = 15.0) -> None:
    task = asyncio.create_task(fetch.run())
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()


async def test_5xx_and_timeouts_are_retried_then_the_snapshot_is_delivered(
    sim: SimulatorServer,
) -> None:
    sim.fail_rest("5xx", 2)
    sim.fail_rest("timeout", 1, seconds=2.0)
    fetch = fetcher(sim)
    got: list[bytes] = []
    done = asyncio.Event()

    def deliver(frame: bytes) -> bool:
        got.append(frame)
        done.set()
        return True

    fetch.request("spot", TOPIC, deliver)
    fetch.request("spot", TOPIC, deliver)  # a repeat while queued: one fetch
    await run_until(fetch, done)
    frame = decode_frame(got[0])
    assert isinstance(frame, BookFrame) and frame.snapshot and frame.topic == TOPIC
    assert len(frame.bids) == 1000
    assert fetch.counters.failed_attempts == 3 and fetch.counters.fetched == 1
    assert sim.rest_requests == 4


async def test_gives_up_after_max_attempts(sim: SimulatorServer) -> None:
    sim.fail_rest("5xx", MAX_ATTEMPTS)
    fetch = fetcher(sim)
    task = asyncio.create_task(fetch.run())
    fetch.request("spot", TOPIC, lambda frame: True)
    deadline = time.monotonic() + 15
    while fetch.counters.given_up == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    assert fetch.counters.given_up == 1 and fetch.counters.fetched == 0
    assert sim.rest_requests == MAX_ATTEMPTS


async def test_requests_are_rate_limited(sim: SimulatorServer) -> None:
    fetch = fetcher(sim, per_second=4.0)
    times: list[float] = []
    done = asyncio.Event()

    def deliver(frame: bytes) -> bool:
        times.append(time.monotonic())
        if len(times) == 3:
            done.set()
        return True

    started = time.monotonic()
    task = asyncio.create_task(fetch.run())
    for _ in range(3):
        fetch.request("spot", TOPIC, deliver)
        await asyncio.sleep(0)  # let the worker take it: three separate fetches
        while fetch._pending:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(done.wait(), 15)
    task.cancel()
    # The third request cannot start before two intervals after the first one started.
    assert times[2] - started >= 2 * 0.25

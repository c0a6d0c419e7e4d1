"""``orderbook.full`` end to end: deltas over the websocket, the snapshot over REST.

simulator -> ingestor (websocket + REST snapshots) -> book_builder -> consumer. Every
published ``book`` of the full book (``"depth":"full"``) must equal the simulator's true book
at its ``u``, through REST failures (HTTP 503, a timeout), a gap, a ``u = 1`` reset and a
dropped connection; after each the book is live again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import zmq
import zmq.asyncio

from mdgw.simulator.faults import FaultKind, FaultRequest
from mdgw.simulator.market import FULL, TruthUnavailableError
from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.endpoints import tcp_endpoint
from mdgw.testing.processes import Service
from mdgw.testing.truth import subscriber, wait_for

pytestmark = pytest.mark.e2e

PUBLISH_DEPTH = 20
SYMBOL = "BTCUSDT"


@dataclass
class Seen:
    books: int = 0
    unverifiable: int = 0
    wrong: list[str] = field(default_factory=list)
    state: str = ""
    last_book_at: float = 0.0
    statuses: list[str] = field(default_factory=list)


async def consume(sub: zmq.asyncio.Socket, sim: SimulatorServer, seen: Seen) -> None:
    while True:
        _, payload = await sub.recv_multipart()
        msg = orjson.loads(payload)
        if msg["channel"] == "status":
            seen.state = msg["state"]
            seen.statuses.append(f"{msg['state']}: {msg['reason']}")
            continue
        if msg["channel"] != "book":
            continue
        seen.state = seen.state or "live"
        if seen.state != "live":
            seen.wrong.append(f"book u={msg['u']} while {seen.state}")
        if msg["depth"] != "full":
            seen.wrong.append(f"depth {msg['depth']!r}")
        seen.books += 1
        seen.last_book_at = time.monotonic()
        try:
            truth = sim.market.truth("spot", SYMBOL, FULL, msg["u"])
        except TruthUnavailableError:
            seen.unverifiable += 1
            continue
        if msg["bids"] != [list(x) for x in truth.bids[:PUBLISH_DEPTH]] or msg["asks"] != [
            list(x) for x in truth.asks[:PUBLISH_DEPTH]
        ]:
            seen.wrong.append(f"book u={msg['u']} differs from the truth")


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    params = SimulatorParams(
        streams={"spot": (SYMBOL,)},
        port=0,
        seed=5,
        rate=40.0,
        trade_rate=0.0,
        levels=1000,
        truth_history=20_000,
    )
    async with SimulatorServer(params) as server:
        yield server


async def test_full_book_matches_truth_through_rest_failures(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.fail_rest("5xx", 2)  # the first snapshot fetches fail: retried with backoff
    pub = f"{tcp_endpoint()}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[bybit]
ws_url = "ws://127.0.0.1:{sim.port}/v5/public"
rest_url = "{sim.http_url}"
rest_timeout = 1.0
ping_interval = 1
silence_timeout = 3
backoff_initial = 0.2
backoff_max = 1.0
system_status = false

[[bybit.streams]]
category = "spot"
symbols = ["{SYMBOL}"]
depth = "full"
trades = false

[zmq]
raw = "ipc://{tmp_path}/raw.sock"
control = "ipc://{tmp_path}/control.sock"
pub = "{pub}"
snapshot = "{tcp_endpoint()}"

[books]
publish_depth = {PUBLISH_DEPTH}
resync_timeout = 2
resync_min_interval = 0.3

[log]
format = "json"
stats_interval = 2
"""
    )
    # resync_timeout 2 (the harness default), above rest_timeout plus a retry's backoff. After
    # the drop below, the new connection's first delta asks for the snapshot at once.
    services = [
        Service(name, config, tmp_path / f"{name}.log").start()
        for name in ("book_builder", "ingestor")
    ]
    ctx = zmq.asyncio.Context()
    sub = subscriber(ctx, pub)
    seen = Seen()
    consumer = asyncio.create_task(consume(sub, sim, seen))
    topic = f"orderbook.full.{SYMBOL}"
    try:
        await wait_for(lambda: seen.books > 5, "the full book live", 30)
        assert sim.rest_requests >= 3  # two failures, then a snapshot

        faults: list[tuple[str, Callable[[], object]]] = [
            (
                "gap",
                lambda: sim.apply_fault(FaultRequest(FaultKind.SKIP, category="spot", topic=topic)),
            ),
            (
                "u=1 reset",
                lambda: sim.apply_fault(
                    FaultRequest(FaultKind.RESTART, category="spot", topic=topic)
                ),
            ),
            (
                "REST timeout, then a gap",
                lambda: (
                    sim.fail_rest("timeout", 1, seconds=3.0),
                    sim.apply_fault(FaultRequest(FaultKind.SKIP, category="spot", topic=topic)),
                ),
            ),
            (
                "dropped connection",
                lambda: sim.apply_fault(FaultRequest(FaultKind.DROP, category="spot")),
            ),
        ]
        for name, inject in faults:
            before = sim.rest_requests
            inject()
            t0 = time.monotonic()
            await wait_for(
                lambda t0=t0, before=before: (
                    sim.rest_requests > before
                    and seen.last_book_at > t0 + 0.3
                    and seen.state == "live"
                ),
                f"live again after {name}",
                timeout=20,
            )
            assert not seen.wrong, seen.wrong[:5]
        await asyncio.sleep(1)
        assert not seen.wrong, seen.wrong[:5]
        assert seen.books > 10
        assert seen.unverifiable < seen.books // 10
        assert any("u reset to 1" in s for s in seen.statuses), seen.statuses
    finally:
        consumer.cancel()
        for service in reversed(services):
            service.stop()
        ctx.destroy(linger=0)
    ingestor_log = (tmp_path / "ingestor.log").read_text()
    assert "rest_snapshot_failed" in ingestor_log

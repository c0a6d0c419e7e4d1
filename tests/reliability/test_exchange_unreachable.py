"""The exchange unreachable for a while: capped, jittered backoff; one line per attempt;
recovery as soon as it is back.

A real book_builder and real ingestor processes; the exchange is the in-process simulator,
made unreachable three ways, each with a fresh ingestor started during the outage:

- ``refused``: the simulator is stopped (TCP connection refused);
- ``503``: the simulator answers the websocket upgrade with HTTP 503 (``refuse``);
- ``timeout``: a TCP server that accepts and never answers the handshake, so every attempt
  ends at ``bybit.connect_timeout``.

From the ingestor's JSON log: one ``connect_failed`` line per attempt with the reason and
the announced delay; attempt timestamps never closer than the announced delay (no tight
loop), delays growing from ``backoff_initial`` to ``backoff_max`` with jitter, never above
it. When the exchange is back, the next attempt succeeds and the books are live within a
few seconds. Another ingestor with ``max_new_connections_per_5min = 3``, started with the
first one, shows the cap: three attempts, then ``connection_rate_capped`` and no fourth,
not even once the exchange is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from mdgw.simulator.faults import FaultKind, FaultRequest
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import Stream, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.processes import Service, clean_env
from mdgw.testing.truth import TruthConsumer, wait_for

pytestmark = pytest.mark.e2e

STREAMS = [Stream("linear", "BTCUSDT", 50), Stream("linear", "ETHUSDT", 50)]  # one connection
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 0.8
CONNECT_TIMEOUT = 1.0
ATTEMPTS = 6  # per outage: enough to reach the cap (0.1, 0.2, 0.4, 0.8, 0.8, ...)
# Seconds a retry may come after its announced delay (plus connect_timeout when the attempt
# times out): typically (the median gap) at most SLACK, never more than LATE. The ingestor
# sleeps the delay and tries; on a busy machine its wakeup can come late now and then,
# which is scheduling, not backoff: a retry loop that waits twice its delay fails both.
SLACK = 0.5
LATE = 3.0


def ts(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["timestamp"]).timestamp()


class BlackHole:
    """Accepts TCP connections and never says a word (the websocket open times out)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int) -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            with contextlib.suppress(Exception):
                await reader.read()  # until the client gives up and closes

        self.server = await asyncio.start_server(hold, "127.0.0.1", port)

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def check_attempts(lines: list[dict[str, Any]], reason: str, connect_s: float) -> list[float]:
    """The backoff rules on one ingestor's connect_failed lines; returns the gaps."""
    fails = [line for line in lines if line["event"] == "connect_failed"]
    assert len(fails) >= ATTEMPTS, f"{len(fails)} attempts logged"
    # One line per attempt, each with the reason.
    assert [f["attempt"] for f in fails] == list(range(1, len(fails) + 1))
    assert {f["reason"] for f in fails} == {reason}, {f["reason"] for f in fails}
    delays = [f["retry_in"] for f in fails]
    for n, delay in enumerate(delays):
        base = min(BACKOFF_MAX, BACKOFF_INITIAL * 2**n)
        assert base / 2 - 0.001 <= delay <= base + 0.001, (n, delay, base)
    times = [ts(f) for f in fails]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    late = [gap - delay - connect_s for gap, delay in zip(gaps, delays, strict=False)]
    for gap, delay in zip(gaps, delays, strict=False):
        # Never sooner than announced (no tight loop), never much later.
        assert gap >= delay - 0.02, (gap, delay)
        assert gap <= delay + connect_s + LATE, (gap, delay)
    assert sorted(late)[len(late) // 2] <= SLACK, f"retries late by {late}"
    # The gaps grow: each is at least its delay, and the delays grow (checked above).
    assert sum(delays[:2]) < sum(delays[-2:]), f"delays do not grow: {delays}"
    capped = delays[4:]
    assert len(set(capped)) > 1, f"no jitter at the cap: {capped}"
    return gaps


async def test_unreachable_exchange_backs_off_with_jitter_to_the_cap_and_recovers_at_once(
    rundir: Path, tmp_path: Path
) -> None:
    sim = SimulatorServer(sim_params(STREAMS, rate=20.0))
    await sim.start()
    port = sim.port
    gw = Gateway(
        rundir,
        tmp_path,
        STREAMS,
        ws_url=f"ws://127.0.0.1:{port}/v5/public",
        sections={
            "bybit": {
                "backoff_initial": BACKOFF_INITIAL,
                "backoff_max": BACKOFF_MAX,
                "connect_timeout": CONNECT_TIMEOUT,
            }
        },
    )
    ctx = zmq.asyncio.Context()
    consumer = TruthConsumer(ctx, gw.pub, sim, STREAMS)
    consumer.start()
    gw.builder.start()
    hole = BlackHole()
    ingestors: list[Service] = []
    sims = [sim]

    async def restart_sim() -> None:
        new = SimulatorServer(sim_params(STREAMS, rate=20.0, port=port))
        await new.start()
        consumer.sim = new
        sims.append(new)

    async def end_refusal() -> None:
        sims[-1].apply_fault(FaultRequest(FaultKind.CLEAR))

    async def end_black_hole() -> None:
        await hole.stop()
        await restart_sim()

    async def outage(
        name: str,
        reason: str,
        connect_s: float,
        end: Callable[[], Awaitable[None]],
        also: Callable[[], bool] = lambda: True,
    ) -> None:
        """One outage; *also*: a further condition to wait for before it ends."""
        ingestor = gw.ingestor_service(f"ingestor-{name}.log")
        ingestors.append(ingestor)
        ingestor.start()
        await wait_for(
            lambda: len(ingestor.events("connect_failed")) >= ATTEMPTS and also(),
            f"{ATTEMPTS} failed attempts ({name})",
            ATTEMPTS * (BACKOFF_MAX + connect_s) + 60,
        )
        back = time.monotonic()
        await end()
        back_wall = time.time()
        took = await wait_for(
            lambda: consumer.books_since(gw.keys, back),
            f"books live after the exchange is back ({name})",
            BACKOFF_MAX + connect_s + 60,
        )
        lines = ingestor.lines()
        gaps = check_attempts(lines, reason, connect_s)
        up = [line for line in lines if line["event"] == "connection_up"]
        assert up, "no connection_up"
        reconnect_after = ts(up[0]) - back_wall
        print(
            f"{name}: {len(gaps) + 1} attempts, gaps {[round(g, 2) for g in gaps]}, "
            f"connected {reconnect_after:.2f}s and books live {took:.2f}s after the exchange "
            "was back"
        )
        # At once: the attempt in flight when the exchange came back may still fail, the
        # next one succeeds (counted, not timed: on a busy machine the clock says little).
        after_back = [f for f in lines if f["event"] == "connect_failed" and ts(f) > back_wall]
        assert len(after_back) <= 1, after_back
        assert reconnect_after <= BACKOFF_MAX + connect_s + LATE
        # Stay under the connection-rate cap: here, a handful of attempts in any 5 minutes.
        assert len(ingestor.events("connect_failed")) + len(up) <= 450
        assert ingestor.stop() == 0

    try:
        await sim.stop()
        # The rate cap, during the first outage: 3 new connections per 5 minutes, then the
        # ingestor waits (the outage ends only once it is capped; the exchange is back while
        # it waits, and it must not try again).
        capped = Service(
            "ingestor",
            gw.config,
            tmp_path / "ingestor-capped.log",
            # Its own id: two ingestors named alike would look like one with sequence holes.
            env=clean_env(MDGW_BYBIT__MAX_NEW_CONNECTIONS_PER_5MIN="3", MDGW_INGESTOR__ID="capped"),
        )
        ingestors.append(capped)
        capped.start()
        await outage(
            "refused",
            "connection refused",
            0.0,
            restart_sim,
            also=lambda: bool(capped.events("connection_rate_capped")),
        )
        cap_line = capped.events("connection_rate_capped")[0]
        assert cap_line["max_new_connections"] == 3 and cap_line["wait"] > 250
        deadline = ts(cap_line) + 2.0
        await wait_for(lambda: time.time() > deadline, "2 s after the cap", 5)
        assert len(capped.events("connect_failed")) == 3
        assert not capped.events("connection_up")
        assert capped.stop() == 0

        sims[-1].apply_fault(FaultRequest(FaultKind.REFUSE, seconds=3600))
        await outage("503", "HTTP 503 on upgrade", 0.0, end_refusal)

        await sims[-1].stop()
        await hole.start(port)
        await outage("timeout", "timeout", CONNECT_TIMEOUT, end_black_hole)

        consumer.check()
        seen = consumer.seen
        assert not seen.wrong, seen.wrong[:5]
        assert not seen.published_while_not_live, seen.published_while_not_live[:5]
        assert gw.builder.stop() == 0
    finally:
        await consumer.stop()
        for ingestor in ingestors:
            ingestor.kill()
        gw.kill()
        await hole.stop()
        for server in sims:
            with contextlib.suppress(RuntimeError):
                await server.stop()
        ctx.destroy(linger=0)

"""`python -m mdgw.top --once` against a running gateway (real processes, the simulator)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import MIXED_STREAMS, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.processes import ROOT, clean_env
from mdgw.testing.scrape import health, metrics_port, wait_async, with_metrics

pytestmark = pytest.mark.e2e

STREAMS = list(MIXED_STREAMS)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(sim_params(STREAMS, rate=40.0)) as server:
        yield server


async def test_top_shows_every_book_live_with_prices(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    gw = with_metrics(
        Gateway(rundir, tmp_path, STREAMS, ws_url=f"ws://127.0.0.1:{sim.port}/v5/public")
    )
    gw.start()
    try:
        builder, ingestor = await metrics_port(gw.builder), await metrics_port(gw.ingestor)

        async def all_live() -> bool:
            status, body = await health(builder)
            states = [book["state"] for book in body["books"].values()]
            return status == 200 and states == ["live"] * len(STREAMS)

        await wait_async(all_live, "every book live", 30)
        # A subprocess in this loop's terms: the simulator runs in this event loop.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mdgw.top",
            "--once",
            "--width",
            "170",
            "--builder",
            f"http://127.0.0.1:{builder}",
            "--ingestor",
            f"http://127.0.0.1:{ingestor}",
            cwd=ROOT,
            env=clean_env(MDGW_CONFIG=str(gw.config)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        text = out.decode()
        print(text)
        assert proc.returncode == 0, err.decode()
        assert "mdgw top" in text and " ok " in text.splitlines()[0]
        assert "ingestors connected: 1" in text
        assert text.count(" subscribed ") == 3  # one connection per category
        for stream in STREAMS:
            row = next(
                line.split()
                for line in text.splitlines()
                if line.split()[:3] == [stream.category, stream.symbol, str(stream.depth)]
            )
            assert row[3] == "live", row
            bid, ask = float(row[7]), float(row[8])  # prices from the pub socket's bbo
            assert 0 < bid < ask, row
    finally:
        gw.kill()

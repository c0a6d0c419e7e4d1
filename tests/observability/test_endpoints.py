"""/metrics and /health of real book_builder and ingestor processes against the simulator.

Both services run with ``--metrics-port auto`` (the kernel picks the port, the service logs
it in ``metrics_listening``): no fixed port, so this runs beside other test runs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mdgw.simulator.faults import FaultKind, FaultRequest
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import MIXED_STREAMS, sim_params
from mdgw.testing.gateway import Gateway
from mdgw.testing.processes import ROOT, Service, clean_env
from mdgw.testing.scrape import (
    Samples,
    health,
    label_sets,
    metrics_port,
    names,
    scrape,
    value,
    wait_async,
    with_metrics,
)

pytestmark = pytest.mark.e2e

STREAMS = list(MIXED_STREAMS)
UNHEALTHY_AFTER = 2.0
BUILDER_METRICS = {
    "mdgw_frames_total",
    "mdgw_books_published_total",
    "mdgw_book_state",
    "mdgw_book_resyncs_total",
    "mdgw_book_age_seconds",
    "mdgw_publish_latency_seconds_bucket",
    "mdgw_publish_latency_seconds_count",
    "mdgw_publish_latency_seconds_sum",
    "mdgw_pub_dropped_total",
    "mdgw_snapshots_served_total",
    "mdgw_ingestors_connected",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
}
INGESTOR_METRICS = {
    "mdgw_ws_connections",
    "mdgw_ws_reconnects_total",
    "mdgw_ws_frames_total",
    "mdgw_ws_frames_dropped_total",
    "mdgw_exchange_latency_seconds_bucket",
    "mdgw_exchange_latency_seconds_count",
    "process_cpu_seconds_total",
}


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(sim_params(STREAMS, rate=40.0)) as server:
        yield server


def gateway(sim: SimulatorServer, rundir: Path, tmp_path: Path, **bybit: float) -> Gateway:
    gw = Gateway(
        rundir,
        tmp_path,
        STREAMS,
        ws_url=f"ws://127.0.0.1:{sim.port}/v5/public",
        sections={"metrics": {"unhealthy_after": UNHEALTHY_AFTER}, "bybit": dict(bybit)},
    )
    return with_metrics(gw)


async def test_metrics_parse_rise_and_follow_a_gap_through_resyncing_to_live(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    gw = gateway(sim, rundir, tmp_path)
    # This ingestor does not hear book_builder's resync requests (its control endpoint
    # leads nowhere), so a book that loses sync stays `resyncing` until the test drops the
    # connection: the state is seen, not raced.
    gw.ingestor = Service(
        "ingestor",
        gw.config,
        tmp_path / "ingestor.log",
        args=["--metrics-port", "auto"],
        env=clean_env(MDGW_ZMQ__CONTROL=f"ipc://{rundir}/nobody.sock"),
    )
    gw.start()
    try:
        builder_port = await metrics_port(gw.builder)
        ingestor_port = await metrics_port(gw.ingestor)

        async def all_live() -> bool:
            status, body = await health(builder_port)
            states = [book["state"] for book in body["books"].values()]
            return status == 200 and states == ["live"] * len(STREAMS)

        # (/health is 200 too while a book is new or resyncing for less than unhealthy_after)
        await wait_async(all_live, "builder /health 200 with every book live", 30)
        status, body = await health(builder_port)
        assert body["status"] == "ok"
        assert set(body["books"]) == {f"{s.category}.{s.symbol}.{s.depth}" for s in STREAMS}
        assert all(book["state"] == "live" for book in body["books"].values())
        assert list(body["ingestors"]) == ["ingestor"]
        status, ingestor_health = await health(ingestor_port)
        assert status == 200, ingestor_health
        assert {c["state"] for c in ingestor_health["connections"].values()} == {"subscribed"}

        first = await scrape(builder_port)
        assert names(first) >= BUILDER_METRICS, BUILDER_METRICS - names(first)
        for labels in label_sets(first, "mdgw_book_state"):
            assert set(labels) == {"category", "symbol", "depth", "state"}
        assert {labels["state"] for labels in label_sets(first, "mdgw_book_state")} == {
            "new",
            "live",
            "resyncing",
            "stale",
        }
        assert value(first, "mdgw_ingestors_connected") == 1
        ingestor_first = await scrape(ingestor_port)
        assert names(ingestor_first) >= INGESTOR_METRICS, INGESTOR_METRICS - names(ingestor_first)
        assert (
            value(ingestor_first, "mdgw_ws_connections", category="spot", state="subscribed") == 1
        )

        await wait_async(
            lambda: rose(builder_port, first, ingestor_port, ingestor_first),
            "counters rising with traffic",
            15,
        )

        # A gap in u on one topic: counted once under reason="gap", resyncing, then live.
        target = STREAMS[0]
        labels = {"category": target.category, "symbol": target.symbol}
        state = {**labels, "depth": str(target.depth)}
        before = value(
            await scrape(builder_port), "mdgw_book_resyncs_total", **labels, reason="gap"
        )
        sim.apply_fault(
            FaultRequest(
                FaultKind.SKIP,
                category=target.category,
                topic=f"orderbook.{target.depth}.{target.symbol}",
            )
        )

        async def resyncing() -> bool:
            now = await scrape(builder_port)
            return (
                value(now, "mdgw_book_resyncs_total", **labels, reason="gap") == before + 1
                and value(now, "mdgw_book_state", **state, state="resyncing") == 1
                and value(now, "mdgw_book_state", **state, state="live") == 0
            )

        await wait_async(resyncing, "resyncs_total{reason=gap} + 1 and state resyncing", 15)
        sim.apply_fault(FaultRequest(FaultKind.DROP, category=target.category))

        async def live_again() -> bool:
            now = await scrape(builder_port)
            return value(now, "mdgw_book_state", **state, state="live") == 1

        await wait_async(live_again, "the book live again after a new connection", 20)
        after = await scrape(ingestor_port)
        assert (
            value(
                after,
                "mdgw_ws_reconnects_total",
                category=target.category,
                reason="connection_lost",
            )
            >= 1
        )
        assert (
            value(await scrape(builder_port), "mdgw_book_resyncs_total", **labels, reason="gap")
            == before + 1
        )
        assert gw.stop() == {"ingestor": 0, "book_builder": 0}
    finally:
        gw.kill()


async def test_health_turns_503_within_unhealthy_after_when_the_exchange_falls_silent(
    sim: SimulatorServer, rundir: Path, tmp_path: Path
) -> None:
    # A silence longer than the test: the ingestor's watchdog must not replace the
    # connection (silence_timeout 60 s), so the books stay live but get no frame.
    gw = gateway(sim, rundir, tmp_path, ping_interval=20, silence_timeout=60)
    gw.start()
    try:
        port = await metrics_port(gw.builder)

        async def healthy() -> bool:
            return (await health(port))[0] == 200

        await wait_async(healthy, "builder /health 200", 60)
        # Steady: it stays 200 over more than unhealthy_after.
        steady_until = time.monotonic() + UNHEALTHY_AFTER + 1
        while time.monotonic() < steady_until:
            status, body = await health(port)
            assert status == 200, body
        silenced = time.monotonic()
        assert sim.apply_fault(FaultRequest(FaultKind.SILENCE, seconds=30)) > 0
        # Every answer until the first 503 is checked against the ages it reports: a 200
        # only while every book had a frame within unhealthy_after, a 503 only once one had
        # none for that long. That is the rule itself, and it holds however late this
        # (busy) process polls; the wall-clock bound below is a generous backstop.
        answers: list[tuple[int, dict[str, Any]]] = []

        async def unhealthy() -> bool:
            status, body = await health(port)
            # A 503 without books is "event loop: ..." (the builder's loop did not answer
            # within 2 s on a starved machine): not a verdict on the books, skipped.
            if "books" in body:
                answers.append((status, body))
            return status == 503 and "books" in body

        await wait_async(unhealthy, "builder /health 503", UNHEALTHY_AFTER + 30)
        took = time.monotonic() - silenced
        status, body = answers[-1]
        print(f"/health 503 {took:.2f}s after the silence: {body.get('problems')}")
        assert body["status"] == "degraded" and body["problems"]
        for status, answer in answers:
            oldest = max(book["age_s"] or 0.0 for book in answer["books"].values())
            assert (status == 503) == (oldest >= UNHEALTHY_AFTER), (status, answer)
    finally:
        # The silenced connections would hold the simulator's close for its 10 s timeout.
        sim.apply_fault(FaultRequest(FaultKind.CLEAR))
        gw.kill()


async def rose(
    builder_port: int, first: Samples, ingestor_port: int, ingestor_first: Samples
) -> bool:
    now, ingestor_now = await scrape(builder_port), await scrape(ingestor_port)
    return (
        all(
            value(now, name, category=s.category) > value(first, name, category=s.category)
            for s in STREAMS
            for name in ("mdgw_frames_total", "mdgw_books_published_total")
        )
        and all(
            value(ingestor_now, "mdgw_ws_frames_total", category=s.category)
            > value(ingestor_first, "mdgw_ws_frames_total", category=s.category)
            for s in STREAMS
        )
        and value(now, "mdgw_publish_latency_seconds_count")
        > value(first, "mdgw_publish_latency_seconds_count")
    )


# --- a port that cannot be had is a configuration error ----------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def run_service(module: str, tmp_path: Path, args: list[str], **env: str) -> tuple[int, str]:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[zmq]\nraw = "ipc://{tmp_path}/raw.sock"\ncontrol = "ipc://{tmp_path}/control.sock"\n'
        '[bybit]\nws_url = "ws://127.0.0.1:9/v5/public"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", f"mdgw.{module}", *args],
        cwd=ROOT,
        env=clean_env(MDGW_CONFIG=str(config), **env),
        check=False,
        capture_output=True,
        timeout=60,
    )
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize(
    "case",
    [
        ("book_builder", [], {"MDGW_METRICS__BOOK_BUILDER": "{taken}"}, "metrics.book_builder"),
        ("ingestor", [], {"MDGW_METRICS__INGESTOR": "{taken}"}, "metrics.ingestor"),
        ("ingestor", ["--metrics-port", "{taken}"], {}, "--metrics-port"),
        ("book_builder", [], {"MDGW_METRICS__BOOK_BUILDER": "70000"}, "metrics.book_builder"),
        ("ingestor", ["--metrics-port", "65536"], {}, "--metrics-port"),
        ("book_builder", ["--metrics-port", "-3"], {}, "--metrics-port"),
    ],
)
def test_a_taken_or_impossible_port_stops_the_service_with_78_naming_the_key(
    tmp_path: Path, taken_port: int, case: tuple[str, list[str], dict[str, str], str]
) -> None:
    module, args, env, key = case
    args = [a.replace("{taken}", str(taken_port)) for a in args]
    env = {k: v.replace("{taken}", str(taken_port)) for k, v in env.items()}
    # The other service's port must not be the fixed default either.
    env.setdefault("MDGW_METRICS__BOOK_BUILDER", "0")
    env.setdefault("MDGW_METRICS__INGESTOR", "0")
    status, stderr = run_service(module, tmp_path, args, **env)
    lines = stderr.strip().splitlines()
    assert status == 78, stderr
    assert len(lines) == 1 and f" {key}: " in lines[0], stderr

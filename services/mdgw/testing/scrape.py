"""Scrape a running service's ``/metrics`` and ``/health`` and read the samples back.

Used by the observability tests: every sample is parsed with prometheus_client's own
parser, so a test sees what Prometheus would.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from mdgw.testing.gateway import Gateway
from mdgw.testing.processes import Process, Service
from mdgw.testing.truth import wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def http_get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET, an HTTP error status included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def get(url: str) -> tuple[int, bytes]:
    """:func:`http_get` off the event loop."""
    # In a thread: the simulator runs in this test's event loop.
    return await asyncio.to_thread(http_get, url)


async def scrape(port: int) -> Samples:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    status, body = await get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body[:200]
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    """Every sample name scraped."""
    return {name for name, _ in samples}


def label_sets(samples: Samples, name: str) -> list[dict[str, str]]:
    """The label sets of every sample of ``name``."""
    return [dict(labels) for n, labels in samples if n == name]


async def health(port: int) -> tuple[int, dict[str, Any]]:
    """Status and parsed JSON body of ``/health``."""
    status, body = await get(f"http://127.0.0.1:{port}/health")
    parsed: dict[str, Any] = orjson.loads(body)
    return status, parsed


async def metrics_port(service: Process, timeout: float = 30.0) -> int:
    """The port a service started with ``--metrics-port auto`` logged in metrics_listening."""
    await wait_for(lambda: bool(service.events("metrics_listening")), "metrics_listening", timeout)
    port: int = service.events("metrics_listening")[-1]["port"]
    return port


async def wait_async(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> float:
    """Like mdgw.testing.truth.wait_for, for a check that must await (an HTTP request)."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def with_metrics(gw: Gateway) -> Gateway:
    """The gateway's two services, started with ``--metrics-port auto``."""
    gw.builder = Service(
        "book_builder", gw.config, gw.logdir / "book_builder.log", args=["--metrics-port", "auto"]
    )
    gw.ingestor = Service(
        "ingestor", gw.config, gw.logdir / "ingestor.log", args=["--metrics-port", "auto"]
    )
    return gw

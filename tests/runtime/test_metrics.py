"""mdgw.runtime.metrics: the histogram, the HTTP endpoint, the loop bridge, port errors."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from mdgw.runtime.metrics import (
    PUBLISH_LATENCY_BOUNDS,
    Buckets,
    MetricsEndpoint,
    bind,
    call_in_loop,
    histogram_family,
    metrics_port_arg,
)
from mdgw.runtime.settings import ConfigError, Settings, load_settings


def settings(tmp_path: Path, body: str = "", env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(body)
    return load_settings(path, env or {})


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_buckets_count_a_value_on_a_bound_in_that_bound() -> None:
    buckets = Buckets((0.001, 0.01))
    for ns in (1_000_000, 1_000_001, 10_000_000, 20_000_000):
        buckets.observe_ns(ns)
    cumulative, total = buckets.snapshot()
    assert cumulative == [("0.001", 1), ("0.01", 3), ("+Inf", 4)]
    assert total == pytest.approx(0.032000001)


def test_fold_equals_observing_one_by_one() -> None:
    samples = [5_000, 12_000, 999_999, 5_000_000, 3_000_000_000, 0]
    one, many = Buckets(PUBLISH_LATENCY_BOUNDS), Buckets(PUBLISH_LATENCY_BOUNDS)
    for value in samples:
        one.observe_ns(value)
    many.fold_ns(samples)
    assert one.snapshot() == many.snapshot()
    assert one.quantile(0.5) == 0.000025  # the 3rd of 6 samples, 12 µs
    assert Buckets((1.0,)).quantile(0.99) is None


def test_histogram_family_is_what_prometheus_reads(tmp_path: Path) -> None:
    buckets = Buckets((0.001, 0.01))
    buckets.fold_ns([500_000, 2_000_000])
    family = histogram_family("x_seconds", "doc", ["category"], [(("spot",), buckets)])
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("x_seconds_bucket", "0.001")] == 1
    assert samples[("x_seconds_bucket", "+Inf")] == 2
    assert samples[("x_seconds_count", None)] == 2


@pytest.mark.parametrize("value", ["-1", "65536", "http", "", "9110.5"])
def test_metrics_port_flag_rejects_what_is_not_a_port(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        metrics_port_arg(value)
    assert info.value.key == "--metrics-port"


def test_port_zero_means_off(tmp_path: Path) -> None:
    assert bind(settings(tmp_path, "[metrics]\nbook_builder = 0\n"), "book_builder", None) is None
    assert bind(settings(tmp_path), "printer", None) is None  # printer's default is 0
    assert bind(settings(tmp_path), "ingestor", "0") is None


def test_a_taken_port_is_a_config_error_naming_the_key(tmp_path: Path, taken_port: int) -> None:
    config = settings(tmp_path, env={"MDGW_METRICS__INGESTOR": str(taken_port)})
    with pytest.raises(ConfigError) as info:
        bind(config, "ingestor", None)
    assert info.value.key == "metrics.ingestor"
    assert str(taken_port) in str(info.value)
    with pytest.raises(ConfigError) as info:
        bind(settings(tmp_path), "book_builder", str(taken_port))
    assert info.value.key == "--metrics-port"


class _Fake:
    def __init__(self) -> None:
        self.count = 0
        self.healthy = True

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily("mdgw_things_total", "things", value=self.count)

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.healthy, {"status": "ok" if self.healthy else "degraded"}


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[MetricsEndpoint, _Fake]]:
    found = bind(settings(tmp_path), "printer", "auto")
    assert found is not None and found.port > 0
    fake = _Fake()
    found.start(fake.collect, fake.health)
    yield found, fake
    found.close()


def test_endpoint_serves_metrics_health_and_404(
    endpoint: tuple[MetricsEndpoint, _Fake],
) -> None:
    server, fake = endpoint
    fake.count = 7
    status, body, content_type = get(f"{server.url}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["mdgw_things"].samples[0].value == 7
    assert "process_cpu_seconds" in families  # the standard process metrics
    assert get(f"{server.url}/health")[:2] == (200, b'{"status":"ok"}\n')
    fake.healthy = False
    assert get(f"{server.url}/health")[:2] == (503, b'{"status":"degraded"}\n')
    assert get(f"{server.url}/nope")[0] == 404


def test_call_in_loop_runs_on_the_loop_and_times_out_when_it_is_stuck() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        assert call_in_loop(loop, threading.get_ident, 2.0) == thread.ident
        release = threading.Event()
        loop.call_soon_threadsafe(release.wait)  # the loop is now busy
        with pytest.raises(TimeoutError):
            call_in_loop(loop, lambda: 1, 0.2)
        release.set()
        assert call_in_loop(loop, lambda: 2, 2.0) == 2
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

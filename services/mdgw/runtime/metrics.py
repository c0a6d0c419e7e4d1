"""Each service's HTTP endpoint: ``GET /metrics`` (Prometheus) and ``GET /health`` (JSON).

The endpoint is served from its own thread (``http.server.ThreadingHTTPServer``), never
from the service's event loop, so a slow or stuck scraper cannot delay the data path. The
thread reads what the service hands it through two callbacks:

- ``collect()``: metric families (``prometheus_client.core.*MetricFamily``) built from a
  snapshot of the service's plain-int counters. The counters themselves stay plain ints
  and lists updated by the loop in its own batches: no lock, no per-message metric call;
- ``health()``: ``(healthy, body)``; 200 with the JSON body when healthy, else 503.

Services whose state lives in an event loop take their snapshot on the loop with
:func:`call_in_loop` (one short callback per scrape, between two batches), and do the
formatting here, in the HTTP thread.

The port is bound when the service starts (:func:`bind_or_exit`): a port that is taken or
out of range is a configuration error, exit 78 with one line naming the key.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import sys
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Generic, Literal, TypeVar

import orjson
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from mdgw.runtime.settings import EX_CONFIG, ConfigError, Settings

__all__ = [
    "AUTO",
    "EXCHANGE_LATENCY_BOUNDS",
    "LOOP_TIMEOUT",
    "PUBLISH_LATENCY_BOUNDS",
    "Buckets",
    "HealthFn",
    "LoopViews",
    "MetricsEndpoint",
    "bind_or_exit",
    "call_in_loop",
    "health_verdict",
    "histogram_family",
    "metrics_port_arg",
]

T = TypeVar("T")
V = TypeVar("V")
HealthFn = Callable[[], tuple[bool, dict[str, Any]]]
CollectFn = Callable[[], Iterable[Metric]]
AUTO: Final = "auto"
Service = Literal["book_builder", "ingestor", "printer"]

# recv -> pub inside book_builder: 10 µs to 1 s (the publish-p99 alert is at 5 ms).
PUBLISH_LATENCY_BOUNDS: Final = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
# Bybit's ts -> our receive time: the exchange's own delay plus the network, ms to s.
EXCHANGE_LATENCY_BOUNDS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Buckets:
    """A histogram as plain ints, updated by one thread, read by another.

    ``observe_ns`` is a bisect and two additions: cheap enough for a batch of samples on
    the event loop. A reader takes :meth:`snapshot` (a copy) and never sees a count that
    went backwards; the sum may lag the counts by the samples of the batch in progress.
    """

    __slots__ = ("_bounds_ns", "bounds", "counts", "sum_ns")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._bounds_ns = [round(b * 1e9) for b in self.bounds]
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum_ns = 0

    def observe_ns(self, value_ns: int) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le).
        self.counts[bisect_left(self._bounds_ns, value_ns)] += 1
        self.sum_ns += value_ns

    def fold_ns(self, values_ns: Iterable[int]) -> None:
        counts = self.counts
        bounds = self._bounds_ns
        total = 0
        for value in values_ns:
            counts[bisect_left(bounds, value)] += 1
            total += value
        self.sum_ns += total

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` pairs ending with ``+Inf``, and the sum in seconds."""
        counts = list(self.counts)  # one C-level copy: consistent with itself
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, self.sum_ns / 1e9

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (None when empty)."""
        counts = list(self.counts)
        total = sum(counts)
        if not total:
            return None
        rank = q * total
        running = 0
        for index, count in enumerate(counts):
            running += count
            if running >= rank:
                return self.bounds[index] if index < len(self.bounds) else float("inf")
        return float("inf")


def histogram_family(
    name: str, doc: str, labels: Sequence[str], rows: Iterable[tuple[Sequence[str], Buckets]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for values, buckets in rows:
        cumulative, total = buckets.snapshot()
        family.add_metric(list(values), cumulative, total)
    return family


def call_in_loop(loop: Any, fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn`` on the asyncio ``loop`` (from another thread) and return its result.

    Raises ``TimeoutError`` when the loop does not get to it within ``timeout`` seconds,
    and ``RuntimeError`` when the loop is closed.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    loop.call_soon_threadsafe(run)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"the event loop did not answer within {timeout:g}s") from None


def health_verdict(problems: list[str], fields: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """``/health``'s answer: healthy when nothing is wrong; the body says ``ok`` or
    ``degraded``, then *fields*, then the problems (only when there are some)."""
    body: dict[str, Any] = {"status": "degraded" if problems else "ok", **fields}
    if problems:
        body["problems"] = problems
    return not problems, body


# How long a scrape waits for the event loop to take its view.
LOOP_TIMEOUT: Final = 2.0


class LoopViews(Generic[V]):
    """Views of a service's state for the HTTP thread, each taken on the event loop.

    A scrape must not read what the loop is changing, so :meth:`take` runs *snapshot* on the
    loop (:func:`call_in_loop`; copies only) and then *complete* in the HTTP thread (the
    formatting). When the loop is busy or stopping, :meth:`latest` gives the last view taken
    (None before the first) and :meth:`health` says the loop did not answer.
    """

    def __init__(
        self,
        snapshot: Callable[[], V],
        complete: Callable[[V], V] | None = None,
        *,
        timeout: float = LOOP_TIMEOUT,
    ) -> None:
        self._snapshot = snapshot
        self._complete = complete
        self._timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the service starts
        self.last: V | None = None

    def take(self) -> V:
        """A view now; TimeoutError or RuntimeError when the loop does not answer."""
        assert self.loop is not None
        view = call_in_loop(self.loop, self._snapshot, self._timeout)
        if self._complete is not None:
            view = self._complete(view)
        self.last = view
        return view

    def latest(self) -> V | None:
        """A view now, or the last one when the loop is busy or stopping: not nothing."""
        try:
            return self.take()
        except (TimeoutError, RuntimeError):
            return self.last

    def health(
        self, verdict: Callable[[V], tuple[bool, dict[str, Any]]]
    ) -> tuple[bool, dict[str, Any]]:
        """*verdict* of a view now; degraded when the loop does not answer."""
        try:
            view = self.take()
        except (TimeoutError, RuntimeError) as exc:
            return health_verdict([f"event loop: {exc}"], {})
        return verdict(view)


class _Callback(Collector):
    def __init__(self, collect: CollectFn) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/health":
            self._health()
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /health\n")

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception as exc:  # a collector bug: say so, keep serving
            self._reply(500, "text/plain; charset=utf-8", f"collect failed: {exc!r}\n".encode())
            return
        self._reply(200, content_type, body)

    def _health(self) -> None:
        health = self.server.health
        if health is None:
            healthy, body = True, {"status": "ok"}
        else:
            try:
                healthy, body = health()
            except Exception as exc:
                healthy, body = False, {"status": "degraded", "error": repr(exc)[:200]}
        self._reply(200 if healthy else 503, "application/json", orjson.dumps(body) + b"\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown the service's own log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health: HealthFn | None = None


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsEndpoint:
    """A bound HTTP server; :meth:`start` serves it from a daemon thread."""

    def __init__(self, server: _Server, key: str) -> None:
        self._server = server
        self.key = key
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self, collect: CollectFn, health: HealthFn | None = None) -> None:
        registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        registry.register(_Callback(collect))
        self._server.registry = registry
        self._server.health = health
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="metrics-http",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=2.0)
        self._server.server_close()


def metrics_port_arg(value: str) -> int | str:
    """Parse ``--metrics-port``: 0 to 65535, or ``auto``. ConfigError names the flag."""
    if value == AUTO:
        return AUTO
    if value.isdigit() and 0 <= int(value) <= 65535:
        return int(value)
    raise ConfigError(
        "--metrics-port", f"must be a port from 0 to 65535, or 'auto' (got {value!r})"
    )


def bind(settings: Settings, service: Service, port_arg: str | None) -> MetricsEndpoint | None:
    """Bind the service's endpoint (None when its port is 0). ConfigError when it cannot.

    ``port_arg`` is the ``--metrics-port`` argument, if given: it wins over the config key.
    """
    key = "--metrics-port" if port_arg is not None else f"metrics.{service}"
    port: int | str = getattr(settings.metrics, service)
    if port_arg is not None:
        port = metrics_port_arg(port_arg)
    if port == 0:
        return None
    host = settings.metrics.host
    wanted = 0 if port == AUTO else int(port)
    server_cls = _Server6 if ":" in host else _Server
    try:
        server = server_cls((host, wanted), _Handler)
    except OSError as exc:
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        reason = exc.strerror or str(exc)
        raise ConfigError(key, f"cannot listen on {where}: {reason}") from None
    return MetricsEndpoint(server, key)


def bind_or_exit(
    settings: Settings, service: Service, port_arg: str | None = None
) -> MetricsEndpoint | None:
    """:func:`bind`, or one line on stderr and exit 78 (like any configuration error)."""
    try:
        return bind(settings, service, port_arg)
    except ConfigError as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(EX_CONFIG) from None

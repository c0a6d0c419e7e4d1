"""The ingestor's ``/metrics`` and ``/health`` (docs/operations.md lists both).

The connections keep plain counters (:class:`~mdgw.ingestor.connection.ConnectionCounters`,
reconnects by reason, a sampled latency histogram); a scrape copies them on the event loop
(:meth:`IngestorMetrics.snapshot`) and formats them in the HTTP thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mdgw.core.subscriptions import Subscriptions, TopicState
from mdgw.runtime.metrics import (
    EXCHANGE_LATENCY_BOUNDS,
    Buckets,
    LoopViews,
    MetricsEndpoint,
    health_verdict,
    histogram_family,
)

if TYPE_CHECKING:
    from mdgw.ingestor.service import Ingestor

__all__ = [
    "CONNECTION_STATES",
    "EXCHANGE_SAMPLE_NS",
    "RECONNECT_REASONS",
    "ConnectionState",
    "ConnectionView",
    "IngestorMetrics",
    "connection_state",
    "frame_ts_ms",
    "reconnect_label",
]

ConnectionState = Literal["connecting", "subscribing", "subscribed"]
CONNECTION_STATES: Final[tuple[ConnectionState, ...]] = ("connecting", "subscribing", "subscribed")
# At most one frame per connection per 10 ms feeds mdgw_exchange_latency_seconds.
EXCHANGE_SAMPLE_NS: Final = 10_000_000
RECONNECT_REASONS: Final = (
    "connect_failed",  # the websocket did not open (refused, timeout, HTTP error)
    "silence",  # no frame for bybit.silence_timeout: the watchdog aborted it
    "server_closed",  # Bybit closed it
    "connection_lost",  # TCP reset or EOF without a close frame
    "oversized",  # a frame above ingestor.max_frame_bytes
    "replaced",  # book_builder asked for a new connection (resubscribing did not help)
    "closed_by_us",
    "session_failed",  # a bug in a session task (logged with its traceback)
)
_REASON_PREFIXES: Final = (
    ("connect failed", "connect_failed"),
    ("silent for", "silence"),
    ("closed by server", "server_closed"),
    ("connection lost", "connection_lost"),
    ("frame above max_size", "oversized"),
    ("resync of", "replaced"),
    ("closed by us", "closed_by_us"),
    ("session failed", "session_failed"),
)
_TS_KEY: Final = b'"ts":'
_TS_WINDOW: Final = 256  # Bybit puts ts right after topic and type


def reconnect_label(reason: str) -> str:
    """The bounded ``reason`` label of a reconnect, from the logged reason."""
    for prefix, label in _REASON_PREFIXES:
        if reason.startswith(prefix):
            return label
    return "connection_lost"


def frame_ts_ms(frame: bytes) -> int | None:
    """Bybit's top-level ``ts`` (ms) of a data frame, without parsing the JSON."""
    at = frame.find(_TS_KEY, 0, _TS_WINDOW)
    if at < 0:
        return None
    start = at + len(_TS_KEY)
    end = start
    while end < len(frame) and 48 <= frame[end] <= 57 and end - start < 19:
        end += 1
    return int(frame[start:end]) if end > start else None


def connection_state(up: bool, subscriptions: Subscriptions) -> ConnectionState:
    """connecting (no websocket), subscribing, or subscribed (every topic that Bybit did not
    refuse is subscribed or being resynced)."""
    if not up:
        return "connecting"
    resyncing = subscriptions.resyncs_in_flight
    for topic in subscriptions.topics:
        state = subscriptions.state(topic)
        if state in (TopicState.IDLE, TopicState.SUBSCRIBING) and topic not in resyncing:
            return "subscribing"
    return "subscribed"


@dataclass(frozen=True, slots=True)
class ConnectionView:
    name: str
    category: str
    state: ConnectionState
    last_frame_age: float | None
    frames: int
    dropped: int
    reconnects: dict[str, int]
    topics: int
    refused: tuple[str, ...]
    latency: Buckets  # read with Buckets.snapshot (a copy)


def health_of(ingestor_id: str, views: list[ConnectionView]) -> tuple[bool, dict[str, Any]]:
    """503 while any configured stream has no subscribed connection (or Bybit refused it)."""
    connections: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for view in views:
        connections[view.name] = {
            "category": view.category,
            "state": view.state,
            "last_frame_age_s": None
            if view.last_frame_age is None
            else round(view.last_frame_age, 3),
            "topics": view.topics,
            "refused": list(view.refused),
        }
        if view.state != "subscribed":
            problems.append(f"{view.name}: {view.state}")
        if view.refused:
            problems.append(f"{view.name}: Bybit refused {', '.join(view.refused)}")
    if not views:
        problems.append("no connection yet")
    return health_verdict(problems, {"ingestor": ingestor_id, "connections": connections})


def families(categories: Iterable[str], views: list[ConnectionView]) -> Iterable[Metric]:
    cats = sorted(set(categories))
    connections = GaugeMetricFamily(
        "mdgw_ws_connections", "websocket connection slots by state", labels=["category", "state"]
    )
    reconnects = CounterMetricFamily(
        "mdgw_ws_reconnects_total",
        "websockets that ended or failed to open, so a new one is made, by reason",
        labels=["category", "reason"],
    )
    frames = CounterMetricFamily(
        "mdgw_ws_frames_total", "websocket messages received", labels=["category"]
    )
    dropped = CounterMetricFamily(
        "mdgw_ws_frames_dropped_total",
        "data frames dropped because the raw socket would block (book_builder gone or slow)",
        labels=["category"],
    )
    latency: dict[str, Buckets] = {cat: Buckets(EXCHANGE_LATENCY_BOUNDS) for cat in cats}
    for cat in cats:
        mine = [v for v in views if v.category == cat]
        for state in CONNECTION_STATES:
            connections.add_metric([cat, state], sum(v.state == state for v in mine))
        reasons = {reason: 0 for reason in RECONNECT_REASONS}
        for view in mine:
            for reason, count in view.reconnects.items():
                reasons[reason] = reasons.get(reason, 0) + count
            counts = list(view.latency.counts)
            merged = latency[cat]
            merged.counts = [a + b for a, b in zip(merged.counts, counts, strict=True)]
            merged.sum_ns += view.latency.sum_ns
        for reason, count in reasons.items():
            reconnects.add_metric([cat, reason], count)
        frames.add_metric([cat], sum(v.frames for v in mine))
        dropped.add_metric([cat], sum(v.dropped for v in mine))
    yield from (connections, reconnects, frames, dropped)
    yield histogram_family(
        "mdgw_exchange_latency_seconds",
        "Bybit's ts to our receive time (sampled: at most one frame per connection per 10 ms)",
        ["category"],
        [((cat,), latency[cat]) for cat in cats],
    )


class IngestorMetrics:
    """Serves an :class:`~mdgw.ingestor.service.Ingestor`'s metrics and health."""

    def __init__(self, ingestor: Ingestor, endpoint: MetricsEndpoint) -> None:
        self.ingestor = ingestor
        self.endpoint = endpoint
        self._views = LoopViews(self.snapshot)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._views.loop = loop
        self.endpoint.start(self.collect, self.health)

    def close(self) -> None:
        self.endpoint.close()

    def snapshot(self) -> list[ConnectionView]:
        """On the event loop: one copy of every connection's counters and state."""
        now = time.monotonic()
        views = []
        for conn in self.ingestor.connections:
            last = conn.last_frame_at
            views.append(
                ConnectionView(
                    name=conn.name,
                    category=conn.category,
                    state=conn.state,
                    last_frame_age=None if last is None else now - last,
                    frames=conn.counters.frames_in,
                    dropped=conn.counters.dropped,
                    reconnects=dict(conn.reconnect_reasons),
                    topics=len(conn.topics),
                    refused=conn.subscriptions.refused,
                    latency=conn.exchange_latency,
                )
            )
        return views

    def collect(self) -> Iterable[Metric]:
        views = self._views.latest() or []
        return list(families(self.ingestor.groups, views))

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self._views.health(lambda views: health_of(self.ingestor.id, views))

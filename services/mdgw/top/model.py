"""What ``mdgw top`` shows, computed from what it read: pure, so one frame can be tested.

Inputs per refresh: book_builder's ``/health`` (states, ages, ``u``) and ``/metrics``
(frame counters, resyncs, totals), each ingestor's ``/health`` and ``/metrics``, and what the
pub socket carried since the last refresh (``bbo`` messages: best bid/ask, and their
``pub_ns - recv_ns`` as recv->pub latency samples). Rates are differences of counters
between two refreshes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

__all__ = [
    "BboTracker",
    "BookLine",
    "ConnectionLine",
    "IngestorInput",
    "Samples",
    "SourceLine",
    "TopView",
    "build_view",
    "percentile",
]

# (metric name, sorted label pairs) -> value, as parsed from /metrics.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
LATENCY_WINDOW: Final = 2_000  # recv->pub samples kept per symbol


def key_of(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def percentile(values: list[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class BboTracker:
    """Best bid/ask and recent recv->pub latencies per (category, symbol), from ``bbo``."""

    best: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)
    latency_ns: dict[tuple[str, str], deque[int]] = field(default_factory=dict)

    def on_bbo(self, payload: dict[str, Any]) -> None:
        key = (str(payload.get("category")), str(payload.get("symbol")))
        self.best[key] = (payload.get("bid"), payload.get("ask"))
        pub_ns, recv_ns = payload.get("pub_ns"), payload.get("recv_ns")
        if isinstance(pub_ns, int) and isinstance(recv_ns, int):
            window = self.latency_ns.setdefault(key, deque(maxlen=LATENCY_WINDOW))
            window.append(pub_ns - recv_ns)


@dataclass(frozen=True)
class BookLine:
    category: str
    symbol: str
    depth: int | str  # "rpi" for an RPI book, "full" for orderbook.full
    state: str
    age_s: float | None
    frames_per_s: float | None
    u: int | None
    bid: str | None
    ask: str | None
    spread: str | None
    p50_us: float | None
    p99_us: float | None
    resyncs: int


@dataclass(frozen=True)
class ConnectionLine:
    source: str  # the ingestor's id (or its URL when unreachable)
    name: str
    category: str
    state: str
    last_frame_age_s: float | None


@dataclass(frozen=True)
class SourceLine:
    """One source of book_builder's arbiter (``ingestor/slot``)."""

    name: str
    connections: int
    first_share: float | None  # of its frames since the last refresh, the share it was first
    lag_ms: float | None  # mean lag of its late copies, last stats interval
    gaps: int
    failovers: int


@dataclass(frozen=True)
class IngestorInput:
    url: str
    health: dict[str, Any] | None  # None: unreachable
    samples: Samples
    previous: Samples


@dataclass(frozen=True)
class TopView:
    builder_url: str
    builder_status: str  # ok | degraded | unreachable
    problems: list[str]
    books: list[BookLine]
    connections: list[ConnectionLine]
    ingestors_connected: int | None
    frames_per_s: float | None
    books_per_s: float | None
    ws_frames_per_s: float | None
    pub_dropped: int | None
    resyncs: int
    reconnects: int | None
    publish_p99_ms: float | None  # from the histogram, bucket upper bound
    sources: list[SourceLine] = field(default_factory=list)
    maintenance: list[str] = field(default_factory=list)  # Bybit's windows, one line each


def _rate(now: Samples, before: Samples, name: str, dt: float, **labels: str) -> float | None:
    key = key_of(name, **labels)
    if dt <= 0 or key not in now or key not in before:
        return None
    return max(0.0, (now[key] - before[key]) / dt)


def _sum(samples: Samples, name: str) -> float | None:
    values = [v for (n, _), v in samples.items() if n == name]
    return sum(values) if values else None


def _sum_rate(now: Samples, before: Samples, name: str, dt: float) -> float | None:
    a, b = _sum(now, name), _sum(before, name)
    if a is None or b is None or dt <= 0:
        return None
    return max(0.0, (a - b) / dt)


def _spread(bid: str | None, ask: str | None) -> str | None:
    if bid is None or ask is None:
        return None
    try:
        return str(Decimal(ask) - Decimal(bid))
    except InvalidOperation:
        return None


def _histogram_quantile(samples: Samples, name: str, q: float) -> float | None:
    buckets: list[tuple[float, float]] = []
    for (n, labels), value in samples.items():
        if n == f"{name}_bucket":
            le = dict(labels).get("le", "+Inf")
            buckets.append((float(le), value))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= rank:
            return bound
    return None


def _sources(health: dict[str, Any], now: Samples, before: Samples) -> list[SourceLine]:
    """The sources that carry books (system.status's connection has no first or late)."""
    lines = []
    for name, src in sorted(health.get("sources", {}).items()):
        if not (src.get("first") or src.get("late") or src.get("gaps") or src.get("failovers")):
            continue
        ingestor, _, slot = name.partition("/")
        moved = []
        for metric in ("mdgw_source_frames_first_total", "mdgw_source_frames_late_total"):
            key = key_of(metric, ingestor=ingestor, slot=slot)
            moved.append(now.get(key, 0.0) - before.get(key, 0.0) if key in before else 0.0)
        share = moved[0] / sum(moved) if sum(moved) > 0 else None
        lines.append(
            SourceLine(
                name,
                int(src.get("connections", 0)),
                share,
                src.get("lag_ms"),
                int(src.get("gaps", 0)),
                int(src.get("failovers", 0)),
            )
        )
    return lines


def _utc(ms: int) -> str:
    # datetime formats the time it is given; this module reads no clock (import-boundary test).
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _maintenance(health: dict[str, Any]) -> list[str]:
    windows = health.get("maintenance", {})
    lines = [
        f"Bybit maintenance under way until {_utc(n['end'])}: {n['title']} ({n['id']})"
        for n in windows.get("active", [])
    ]
    lines += [
        f"Bybit maintenance planned {_utc(n['begin'])} to {_utc(n['end'])}: "
        f"{n['title']} ({n['id']})"
        for n in windows.get("planned", [])
    ]
    return lines


def build_view(
    *,
    builder_url: str,
    builder_health: dict[str, Any] | None,
    builder: Samples,
    builder_before: Samples,
    dt: float,
    ingestors: list[IngestorInput],
    bbo: BboTracker,
) -> TopView:
    """One frame of the view from what the last two refreshes read."""
    books: list[BookLine] = []
    problems: list[str] = []
    resyncs_total = 0
    if builder_health is None:
        status = "unreachable"
        problems.append(f"book_builder {builder_url}: no answer")
    else:
        status = str(builder_health.get("status", "?"))
        problems += [str(p) for p in builder_health.get("problems", [])]
        for name, book in sorted(builder_health.get("books", {}).items()):
            category, rest = name.split(".", 1)
            symbol, _, depth = rest.rpartition(".")
            resyncs = int(
                sum(
                    v
                    for (n, labels), v in builder.items()
                    if n == "mdgw_book_resyncs_total"
                    and dict(labels).get("category") == category
                    and dict(labels).get("symbol") == symbol
                )
            )
            resyncs_total += resyncs
            bid, ask = bbo.best.get((category, symbol), (None, None))
            window = list(bbo.latency_ns.get((category, symbol), ()))
            p50, p99 = percentile(window, 50), percentile(window, 99)
            books.append(
                BookLine(
                    category=category,
                    symbol=symbol,
                    depth=int(depth) if depth.isdigit() else depth,  # or "rpi", "full"
                    state=str(book.get("state")),
                    age_s=book.get("age_s"),
                    frames_per_s=_rate(
                        builder,
                        builder_before,
                        "mdgw_book_frames_total",
                        dt,
                        category=category,
                        symbol=symbol,
                        depth=depth,
                    ),
                    u=book.get("u"),
                    bid=bid,
                    ask=ask,
                    spread=_spread(bid, ask),
                    p50_us=None if p50 is None else p50 / 1000,
                    p99_us=None if p99 is None else p99 / 1000,
                    resyncs=resyncs,
                )
            )
    connections: list[ConnectionLine] = []
    ws_rate: float | None = None
    reconnects: float | None = None
    for ingestor in ingestors:
        if ingestor.health is None:
            problems.append(f"ingestor {ingestor.url}: no answer")
            continue
        source = str(ingestor.health.get("ingestor", ingestor.url))
        problems += [f"{source}: {p}" for p in ingestor.health.get("problems", [])]
        for name, conn in ingestor.health.get("connections", {}).items():
            connections.append(
                ConnectionLine(
                    source,
                    name,
                    str(conn.get("category")),
                    str(conn.get("state")),
                    conn.get("last_frame_age_s"),
                )
            )
        rate = _sum_rate(ingestor.samples, ingestor.previous, "mdgw_ws_frames_total", dt)
        if rate is not None:
            ws_rate = (ws_rate or 0.0) + rate
        count = _sum(ingestor.samples, "mdgw_ws_reconnects_total")
        if count is not None:
            reconnects = (reconnects or 0.0) + count
    connected: float | None = builder.get(key_of("mdgw_ingestors_connected"))
    dropped = builder.get(key_of("mdgw_pub_dropped_total"))
    publish_p99 = _histogram_quantile(builder, "mdgw_publish_latency_seconds", 0.99)
    return TopView(
        builder_url=builder_url,
        builder_status=status,
        problems=problems,
        books=books,
        connections=connections,
        ingestors_connected=None if connected is None else int(connected),
        frames_per_s=_sum_rate(builder, builder_before, "mdgw_frames_total", dt),
        books_per_s=_sum_rate(builder, builder_before, "mdgw_books_published_total", dt),
        ws_frames_per_s=ws_rate,
        pub_dropped=None if dropped is None else int(dropped),
        resyncs=resyncs_total,
        reconnects=None if reconnects is None else int(reconnects),
        publish_p99_ms=None if publish_p99 is None else publish_p99 * 1000,
        sources=[] if builder_health is None else _sources(builder_health, builder, builder_before),
        maintenance=[] if builder_health is None else _maintenance(builder_health),
    )

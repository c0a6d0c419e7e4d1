"""What the benchmark figures share: timings, reading results, judging correctness.

Each figure is a module of its own (:mod:`.throughput`, :mod:`.latency`, :mod:`.ingestor`,
:mod:`.scale`, :mod:`.memory`); this module holds what they measure with: the sizes and
durations (:class:`Timing`, :class:`LongTiming`), rates from the helpers' results and the
services' stats lines, the builder's counters of what went wrong and :func:`problems_of`,
the full stack of :mod:`.scale` and :mod:`.memory` (:class:`Stack`), and :func:`failed`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mdgw.testing.bench import frames
from mdgw.testing.bench.report import ERROR, FigureResult, Row
from mdgw.testing.bench.stage import Stage
from mdgw.testing.config import gateway_config
from mdgw.testing.endpoints import Endpoints
from mdgw.testing.processes import Helper, Process, Service

__all__ = [
    "LONG_QUICK",
    "QUICK",
    "VERIFY_EVERY",
    "LongTiming",
    "Stack",
    "Timing",
    "builder_counters",
    "counter_rate",
    "failed",
    "fmt",
    "gather",
    "gather_into",
    "in_window",
    "problems_of",
    "quiesce",
    "stack_config",
    "sub_rates",
    "timeline_rate",
    "window_rate",
]

VERIFY_EVERY = 200  # every N-th book is compared with the script

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Sizes and durations of the default figures (seconds)."""

    symbols: int = 100
    pipe_warmup: float = 2.0
    pipe_seconds: float = 9.0  # read as 3 sub-windows; the median is reported
    pipe_reps: int = 2  # builder, pass-through, builder, pass-through
    latency_warmup: float = 2.0
    latency_seconds: tuple[tuple[int, float], ...] = ((2_000, 15.0), (30_000, 8.0))
    ws_warmup: float = 1.0
    ws_seconds: float = 4.0
    ws_reps: int = 3
    hop_seconds: float = 5.0
    # Run a figure's stages at the same time (--quick only: they would measure each other).
    concurrent: bool = False
    # Latency windows stay open until they hold this many samples (--quick: a starved
    # machine may deliver none in a fraction of a second).
    min_samples: int = 0


QUICK = Timing(
    pipe_reps=1,
    pipe_warmup=0.1,
    pipe_seconds=0.3,
    latency_warmup=0.2,
    latency_seconds=((2_000, 0.3), (30_000, 0.3)),
    ws_warmup=0.1,
    ws_seconds=0.3,
    ws_reps=1,
    hop_seconds=0.3,
    concurrent=True,
    min_samples=20,
)


@dataclass(frozen=True)
class LongTiming:
    scale_symbols: int = 1_200
    scale_warmup: float = 15.0
    scale_seconds: float = 60.0
    memory_symbols: int = 500
    memory_seconds: float = 600.0
    memory_baseline_at: float = 60.0  # RSS is compared with its value at this time
    topic_rate: float = 20.0  # book frames/s per symbol (Bybit's depth-50 push: 20 ms)
    trade_rate: float = 2.0  # trade frames/s per symbol


LONG_QUICK = LongTiming(
    scale_symbols=100,
    scale_warmup=1.0,
    scale_seconds=2.0,
    memory_symbols=50,
    memory_seconds=4.0,
    memory_baseline_at=1.0,
)


def gather(calls: list[Callable[[], T]], concurrent: bool) -> list[T]:
    """Each call's result, in order: one after the other, or all at once in threads (the
    smoke run's stages, whose numbers mean nothing). The first call that raised, raises."""
    if not concurrent or len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def gather_into(
    runs: dict[str, list[T]], calls: Sequence[tuple[str, Callable[[], T]]], concurrent: bool
) -> None:
    """:func:`gather` the calls, each result appended to ``runs`` under its call's key, in
    the calls' order (a figure's repetitions of each arm)."""
    results = gather([call for _, call in calls], concurrent)
    for (key, _), result in zip(calls, results, strict=True):
        runs[key].append(result)


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def window_rate(result: dict[str, Any], key: str) -> float:
    seconds = result.get("window_s") or 0.0
    return float(result["window_counts"].get(key, 0)) / seconds if seconds > 0 else 0.0


def sub_rates(result: dict[str, Any], parts: int = 3) -> list[float]:
    """The window's rate in ``parts`` consecutive sub-windows (from the 100 ms timeline)."""
    buckets: list[int] = result.get("buckets") or []
    size = len(buckets) // parts
    if size == 0:
        return []
    span = size * float(result["bucket_s"])
    return [sum(buckets[i * size : (i + 1) * size]) / span for i in range(parts)]


def timeline_rate(
    timeline: list[list[float]], start: float, end: float, column: int = 1
) -> float | None:
    """Rate of a ``[[wall time, running count, ...], ...]`` timeline over [start, end]."""
    inside = [(row[0], row[column]) for row in timeline if start <= row[0] <= end]
    if len(inside) < 2:
        return None
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def in_window(lines: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [line for line in lines if start <= line["t"] <= end + 0.5]


def counter_rate(lines: list[dict[str, Any]], key: str) -> float | None:
    """Rate of a monotonic counter of stats lines, first to last line given."""
    if len(lines) < 2:
        return None
    first, last = lines[0], lines[-1]
    dt = last["t"] - first["t"]
    return (last[key] - first[key]) / dt if dt > 0 else None


def builder_counters(proc: Process) -> dict[str, Any]:
    """The builder's last stats line: its counters of what went wrong."""
    lines = proc.stats_lines()
    if not lines:
        return {}
    last = lines[-1]
    keys = (
        "frames_in",
        "books_out",
        "resyncs",
        "gaps",
        "seq_holes",
        "frames_lost",
        "crossed",
        "malformed",
        "not_synced",
        "bad_envelopes",
        "pub_dropped",
        "books",
    )
    return {key: last.get(key) for key in keys}


def problems_of(consumer: dict[str, Any], builder: dict[str, Any]) -> list[str]:
    """Correctness failures: wrong books, resyncs, gaps, holes, or books not live."""
    found = []
    if consumer.get("wrong"):
        found.append(f"{consumer['wrong']} wrong books ({consumer['wrong_examples'][:1]})")
    if consumer.get("seq_holes"):
        found.append(f"{consumer['seq_holes']} seq holes ({consumer['seq_lost']} lost)")
    states = consumer.get("states", {})
    if states.get("resyncing") or states.get("stale"):
        found.append(f"status messages {states} ({consumer['status_examples'][:2]})")
    for key in ("resyncs", "gaps", "seq_holes", "crossed", "malformed", "not_synced"):
        if builder.get(key):
            found.append(f"builder {key}={builder[key]}")
    if not consumer.get("verified") and consumer.get("counts", {}).get("book"):
        found.append("no book was verified")
    return found


def quiesce(ws: Process) -> None:
    """Stop the websocket frames but keep the connections, then let the pipe drain: the
    services' last counters then describe the run, not its teardown (stopping the server
    would close the ingestor's connections and resync every book; stopping the builder
    first would make the ingestor count drops)."""
    ws.signal(signal.SIGUSR1)
    time.sleep(0.5)


def stack_config(
    stage: Stage,
    ep: Endpoints,
    port: str,
    symbols: int,
    *,
    trades: bool,
    stats_interval: float = 1.0,
    max_rate: float = 0.0,
    journal_dir: Path | None = None,
) -> Path:
    """The gateway config of a benchmark stack: ws blaster at ``port``, ``symbols`` books."""
    return gateway_config(
        stage.dir / "gateway.toml",
        raw=ep.raw,
        control=ep.control,
        pub=ep.pub,
        snapshot=ep.snapshot,
        ws_url=f"ws://127.0.0.1:{port}/v5/public",
        symbols=[frames.symbol(i) for i in range(symbols)],
        trades=trades,
        stats_interval=stats_interval,
        max_rate=max_rate,
        journal_dir=journal_dir,
    )


class Stack:
    """ws_blaster (per-topic rates) -> ingestor -> book_builder -> consumer of everything."""

    def __init__(
        self,
        stage: Stage,
        symbols: int,
        t: LongTiming,
        consumer_seconds: float,
        warmup: float,
        *,
        journal: bool = False,
    ) -> None:
        self.stage = stage
        self.ws = stage.add(
            Helper(
                "ws_blaster",
                "ws_blaster",
                [
                    "--symbols",
                    str(symbols),
                    "--topic-rate",
                    str(t.topic_rate),
                    "--trade-rate",
                    str(t.trade_rate),
                ],
                stage.dir,
            )
        )
        self.ws.wait_ready(timeout=60)
        ep = stage.endpoints()
        self.journal_dir = stage.dir / "journal" if journal else None
        config = stack_config(
            stage,
            ep,
            self.ws.ready.read_text(),
            symbols,
            trades=True,
            stats_interval=5.0,
            journal_dir=self.journal_dir,
        )
        self.started = time.time()
        self.builder = stage.add(Service("book_builder", config, stage.dir / "book_builder.log"))
        self.builder.wait_event("book_builder_started")
        consumer_args = ["--endpoint", ep.pub, "--subscribe", "", "--latency"]
        consumer_args += ["--verify-every", "1000", "--warmup", str(warmup)]
        consumer_args += ["--seconds", str(consumer_seconds)]
        self.consumer = stage.add(Helper("consumer", "consumer", consumer_args, stage.dir))
        self.consumer.wait_ready()
        self.ingestor = stage.add(Service("ingestor", config, stage.dir / "ingestor.log"))
        self.ingestor.wait_event("ingestor_started")
        self.services = (self.ingestor, self.builder, self.ws, self.consumer)

    def stop(self) -> tuple[dict[str, Any], dict[str, Any], int | None]:
        """Stop everything (builder first); the consumer's result, the builder's counters
        and the ingestor's drops."""
        self.stage.sampler.sample()
        quiesce(self.ws)
        self.consumer.stop()
        self.builder.stop()
        self.ingestor.stop()
        self.ws.stop()
        lines = self.ingestor.stats_lines()
        dropped = lines[-1].get("dropped") if lines else None
        return self.consumer.result(), builder_counters(self.builder), dropped


def failed(name: str, exc: BaseException) -> FigureResult:
    """The figure that could not be measured, as one ERROR row."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FigureResult(name, [Row(name, "-", "-", None, ERROR)], {}, text[:300])

"""The long benchmarks (``make bench-long``): the full stack at scale, and a memory soak.

- :func:`scale`: 1,200 symbols at depth 50, 20 book updates/s each plus trades, through
  ws_blaster -> ingestor -> book_builder -> a consumer of everything: it must keep up (no
  drops, no resync, no seq hole, no growing queue) with p99 latency under 5 ms; CPU per
  process is reported.
- :func:`memory`: the same stack at 10k book frames/s for 10 minutes; the RSS of each
  service must stay within ±5 % of its value after the first minute.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.bench.figures import (
    builder_counters,
    fmt,
    problems_of,
    quiesce,
    stack_config,
    window_rate,
)
from scripts.bench.procs import BenchError, Proc, progress, stats_lines
from scripts.bench.report import FigureResult, Row, judged
from scripts.bench.stage import Endpoints, Stage

__all__ = ["LongTiming", "memory", "scale"]

SCALE_P99_MS = 5.0
RSS_TOLERANCE = 0.05
QUEUE_GROWTH_MS = 1.0  # per-second p50s: median of the last third minus the middle third


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


class _Stack:
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
            Proc.helper(
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
        ep = Endpoints.in_dir(stage.dir)
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
        self.builder = stage.add(Proc.service("book_builder", "book_builder", config, stage.dir))
        self.started = time.time()
        self.builder.wait_event("book_builder_started")
        consumer_args = ["--endpoint", ep.pub, "--subscribe", "", "--latency"]
        consumer_args += ["--verify-every", "1000", "--warmup", str(warmup)]
        consumer_args += ["--seconds", str(consumer_seconds)]
        self.consumer = stage.add(Proc.helper("consumer", "consumer", consumer_args, stage.dir))
        self.consumer.wait_ready()
        self.ingestor = stage.add(Proc.service("ingestor", "ingestor", config, stage.dir))
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
        lines = stats_lines(self.ingestor)
        dropped = lines[-1].get("dropped") if lines else None
        return self.consumer.result(), builder_counters(self.builder), dropped


def scale(base: Path, t: LongTiming) -> FigureResult:
    fig = FigureResult("scale")
    offered = t.scale_symbols * t.topic_rate
    with Stage(base, "scale") as stage:
        # The journal on, as config/gateway.toml ships it: its MB per hour at this scale.
        stack = _Stack(stage, t.scale_symbols, t, t.scale_seconds, t.scale_warmup, journal=True)
        stack.consumer.wait_exit(t.scale_warmup + t.scale_seconds + 120)
        got, counters, dropped = stack.stop()
        if got["first"] is None:
            raise BenchError("scale: the consumer received nothing")
        start, end = got["window"]
        journal = _journal_rate(stats_lines(stack.builder), start, end, stack.started)
        cpu = {p.name: stage.sampler.cpu_share(p.name, start, end) for p in stack.services}
        other = stage.sampler.other_share(start, end)
    received = window_rate(got, "book")
    trades = window_rate(got, "trade")
    lat = got["latency"] or {}
    per_second = got["latency_per_second"]  # [second, n, p50, p99, max]
    # A queue that grows shows as a latency that climbs: compare the median per-second p50
    # of the window's last third with its middle third (the first third may still drain
    # what the subscription storm of 1,200 snapshots left).
    third = len(per_second) // 3
    middle = [row[2] for row in per_second[third : 2 * third]]
    last = [row[2] for row in per_second[2 * third :]]
    growth_ms = None
    if middle and last:
        growth_ms = (statistics.median(last) - statistics.median(middle)) / 1000
    problems = problems_of(got, counters)
    if dropped:
        problems.append(f"ingestor dropped {dropped} frames")
    kept_up = not problems and received >= 0.97 * offered
    fig.details = {
        "symbols": t.scale_symbols,
        "offered_book_frames_per_s": offered,
        "received_books_per_s": received,
        "received_trades_per_s": trades,
        "latency_us": lat,
        "latency_per_second": per_second,
        "queue_growth_ms": growth_ms,
        "cpu": cpu,
        "other_cpu": other,
        "builder": counters,
        "ingestor_dropped": dropped,
        "consumer": {k: v for k, v in got.items() if k != "buckets"},
        "journal": journal,
        "problems": problems,
    }
    p99_ms = lat["p99_us"] / 1000 if lat else None
    label = f"scale {t.scale_symbols:,} symbols"
    fig.rows = [
        Row(
            f"{label}: books received/s (+{trades:,.0f} trades/s), no drop/resync/hole",
            fmt(received),
            f"{offered:,.0f} offered",
            received / offered,
            judged(kept_up),
            received,
            "books/s",
        ),
        Row(
            f"{label}: latency p99 (ms)",
            fmt(p99_ms, 2),
            f"< {SCALE_P99_MS:g}",
            None if p99_ms is None else p99_ms / SCALE_P99_MS,
            judged(p99_ms is not None and p99_ms < SCALE_P99_MS),
            p99_ms,
            "ms",
        ),
        Row(
            f"{label}: latency p50 / p99.9 / max (ms)",
            " / ".join(fmt(lat.get(k, 0) / 1000, 2) for k in ("p50_us", "p999_us", "max_us")),
            "-",
        ),
        Row(
            f"{label}: queue growth (p50, last third - middle third of window, ms)",
            fmt(growth_ms, 2),
            f"< {QUEUE_GROWTH_MS:g}",
            None,
            judged(growth_ms is not None and growth_ms < QUEUE_GROWTH_MS),
            growth_ms,
            "ms",
        ),
    ]
    mb_per_hour = journal["mb_per_hour"]
    fig.rows.append(
        Row(
            f"{label}: journal MB per hour on disk (bytes per frame; holes)",
            fmt(mb_per_hour),
            f"{fmt(journal['bytes_per_frame'], 1)} B/frame; {journal['holes']} holes",
            None,
            "info",
            mb_per_hour,
            "MB/hour",
        )
    )
    for name in ("ingestor", "book_builder", "ws_blaster", "consumer"):
        share = cpu.get(name)
        fig.rows.append(
            Row(f"{label}: CPU {name} (cores)", fmt(share, 2), "-", None, "info", share, "cores")
        )
    progress(f"scale: {received:,.0f} books/s of {offered:,.0f}, p99 {fmt(p99_ms, 2)} ms")
    return fig


def _journal_rate(
    lines: list[dict[str, Any]], start: float, end: float, started: float
) -> dict[str, Any]:
    """The journal's write rate over the window, from the builder's stats lines.

    A run too short for two stats lines in its window (``--quick``) is measured from the
    builder's start (*started*, epoch seconds) to its final line instead.
    """
    inside = [line for line in lines if start <= line["t"] <= end + 5.0 and line.get("journal")]
    span = "window"
    if len(inside) < 2:  # a short (--quick) run: the whole run, warm-up included
        zero = {"bytes_written": 0, "envelopes": 0}
        last = [line for line in lines if line.get("journal")][-1:]
        inside = [{"t": started, "journal": zero}, *last]
        span = "whole run"
    final = (lines[-1].get("journal") if lines else None) or {}
    rate = per_frame = None
    if len(inside) >= 2:
        first, last = inside[0], inside[-1]
        dt = last["t"] - first["t"]
        written = last["journal"]["bytes_written"] - first["journal"]["bytes_written"]
        frames = last["journal"]["envelopes"] - first["journal"]["envelopes"]
        if dt > 0:
            rate = written / dt * 3600 / 1e6
        if frames > 0:
            per_frame = written / frames
    return {
        "mb_per_hour": rate,
        "bytes_per_frame": per_frame,
        "holes": final.get("holes", 0),
        "span": span,
        "final": final,
    }


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def memory(base: Path, t: LongTiming) -> FigureResult:
    fig = FigureResult("memory")
    rate = t.memory_symbols * t.topic_rate
    with Stage(base, "memory") as stage:
        stack = _Stack(stage, t.memory_symbols, t, 0.0, t.memory_baseline_at)
        started = time.time()
        next_note = started + 60
        while time.time() - started < t.memory_seconds:
            for proc in stack.services:
                if not proc.alive():
                    raise BenchError(f"memory soak: {proc.name} exited early; see {proc.log}")
            if time.time() >= next_note:
                next_note += 60
                rss = ", ".join(f"{p.name} {p.rss_mib():.0f} MiB" for p in stack.services[:2])
                progress(
                    f"memory soak: {time.time() - started:.0f}s of {t.memory_seconds:.0f}s; {rss}"
                )
            time.sleep(0.5)
        end = time.time()
        got, counters, dropped = stack.stop()
        rss_series = {p.name: stage.sampler.rss.get(p.name, []) for p in stack.services}
        cpu = {
            p.name: stage.sampler.cpu_share(p.name, started + t.memory_baseline_at, end)
            for p in stack.services
        }
    problems = problems_of(got, counters)
    if dropped:
        problems.append(f"ingestor dropped {dropped} frames")
    baseline_t = started + t.memory_baseline_at
    fig.details = {
        "symbols": t.memory_symbols,
        "book_frames_per_s": rate,
        "seconds": t.memory_seconds,
        "cpu": cpu,
        "builder": counters,
        "problems": problems,
        "latency_us": got["latency"],
        "rss_mib": {},
    }
    for name in ("ingestor", "book_builder"):
        # Samples inside the window only: the sampler runs on while the stack stops.
        series = [(s, v) for s, v in rss_series[name] if baseline_t <= s <= end]
        if not series:
            fig.rows.append(Row(f"memory: {name} RSS", "-", "", None, "ERROR"))
            continue
        base_rss = series[0][1]
        low, high = min(v for _, v in series), max(v for _, v in series)
        drift = max(high - base_rss, base_rss - low) / base_rss
        fig.details["rss_mib"][name] = {
            "at_baseline": base_rss,
            "min": low,
            "max": high,
            "end": series[-1][1],
            "samples": [round(v, 1) for s, v in series[:: max(1, len(series) // 20)]],
        }
        fig.rows.append(
            Row(
                f"memory {_duration(t.memory_seconds)} @ {rate:,.0f}/s: {name} RSS drift "
                f"({base_rss:.0f} -> {series[-1][1]:.0f} MiB)",
                f"{drift:.1%}",
                f"<= {RSS_TOLERANCE:.0%}",
                drift / RSS_TOLERANCE,
                judged(drift <= RSS_TOLERANCE),
                drift,
                "fraction",
            )
        )
        # Context for a failed drift: a bounded cache that fills after the baseline (the
        # builder's trade-id window) shows as growth, then flat; a leak keeps growing.
        half = [v for s, v in series if s >= (baseline_t + end) / 2]
        if half:
            late = (max(half) - min(half)) / min(half)
            fig.rows.append(
                Row(
                    f"  {name} RSS range over the second half ({min(half):.0f}-{max(half):.0f} MiB)",
                    f"{late:.1%}",
                    "-",
                    None,
                    "info",
                    late,
                    "fraction",
                )
            )
    fig.rows.append(
        Row(
            "memory soak: verified / wrong / resyncs / holes / ingestor drops",
            "{} / {} / {} / {} / {}".format(
                got["verified"], got["wrong"], counters.get("resyncs"), got["seq_holes"], dropped
            ),
            "n / 0 / 0 / 0 / 0",
            None,
            judged(not problems),
        )
    )
    progress("memory soak: done")
    return fig

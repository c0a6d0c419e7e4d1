"""Scale (``make bench-long``): 1,200 symbols at depth 50, 20 book updates/s each plus
trades, through ws_blaster -> ingestor -> book_builder -> a consumer of everything: it must
keep up (no drops, no resync, no seq hole, no growing queue) with p99 latency under 5 ms;
CPU per process is reported."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mdgw.testing.bench.common import progress
from mdgw.testing.bench.measure import LongTiming, Stack, fmt, problems_of, window_rate
from mdgw.testing.bench.report import FigureResult, Row, judged
from mdgw.testing.bench.stage import Stage
from mdgw.testing.processes import HarnessError

__all__ = ["scale"]

SCALE_P99_MS = 5.0


QUEUE_GROWTH_MS = 1.0  # per-second p50s: median of the last third minus the middle third


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
        first, last_line = inside[0], inside[-1]
        dt = last_line["t"] - first["t"]
        written = last_line["journal"]["bytes_written"] - first["journal"]["bytes_written"]
        frames = last_line["journal"]["envelopes"] - first["journal"]["envelopes"]
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


def scale(base: Path, t: LongTiming) -> FigureResult:
    fig = FigureResult("scale")
    offered = t.scale_symbols * t.topic_rate
    with Stage(base, "scale") as stage:
        # The journal on, as config/gateway.toml ships it: its MB per hour at this scale.
        stack = Stack(stage, t.scale_symbols, t, t.scale_seconds, t.scale_warmup, journal=True)
        stack.consumer.wait_exit(t.scale_warmup + t.scale_seconds + 120)
        got, counters, dropped = stack.stop()
        if got["first"] is None:
            raise HarnessError("scale: the consumer received nothing")
        start, end = got["window"]
        journal = _journal_rate(stack.builder.stats_lines(), start, end, stack.started)
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

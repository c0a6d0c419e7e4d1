"""Memory (``make bench-long``): the full stack at 10k book frames/s for 10 minutes; the RSS
of each service must stay within 5 % of its value after the first minute."""

from __future__ import annotations

import time
from pathlib import Path

from mdgw.testing.bench.common import progress
from mdgw.testing.bench.measure import LongTiming, Stack, problems_of
from mdgw.testing.bench.report import FigureResult, Row, judged
from mdgw.testing.bench.stage import Stage
from mdgw.testing.processes import HarnessError

__all__ = ["memory"]

RSS_TOLERANCE = 0.05


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def memory(base: Path, t: LongTiming) -> FigureResult:
    fig = FigureResult("memory")
    rate = t.memory_symbols * t.topic_rate
    with Stage(base, "memory") as stage:
        stack = Stack(stage, t.memory_symbols, t, 0.0, t.memory_baseline_at)
        started = time.time()
        next_note = started + 60
        while time.time() - started < t.memory_seconds:
            for proc in stack.services:
                if not proc.alive:
                    raise HarnessError(
                        f"memory soak: {proc.name} exited early; see {proc.log_path}"
                    )
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
                    f"  {name} RSS range over the second half "
                    f"({min(half):.0f}-{max(half):.0f} MiB)",
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

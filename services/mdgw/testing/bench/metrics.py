"""Metrics scrape (``make bench``): book_builder's throughput with ``/metrics`` scraped every
second, against the same run without scraping (issue 12: at least 95 %)."""

from __future__ import annotations

import statistics
from functools import partial
from pathlib import Path
from typing import Any

from mdgw.testing.bench.measure import Timing, fmt, gather_into
from mdgw.testing.bench.report import FigureResult, Row, judged
from mdgw.testing.bench.throughput import _combine, _pipe

__all__ = ["SCRAPE_TARGET", "metrics_scrape"]

SCRAPE_TARGET = 0.95  # builder throughput scraped every second / not scraped


def metrics_scrape(base: Path, t: Timing) -> FigureResult:
    """Builder throughput with /metrics scraped every second, against the same without.

    Both arms serve /metrics (``--metrics-port auto``); only the scraping differs, and the
    arms alternate (idle, scraped, idle, scraped) so slow phases of the machine hit both.
    """
    fig = FigureResult("metrics")
    runs: dict[str, list[dict[str, Any]]] = {"idle": [], "scraped": []}
    calls = [
        (arm, partial(_pipe, base, "book_builder", t, rep=rep, scrape=arm == "scraped"))
        for rep in range(t.pipe_reps)
        for arm in ("idle", "scraped")
    ]
    gather_into(runs, calls, t.concurrent)
    idle = _combine(runs["idle"], "book_builder")
    scraped = _combine(runs["scraped"], "book_builder")
    scrapes = [run.get("scrapes") or {} for run in runs["scraped"]]
    count = sum(s.get("in_window", 0) for s in scrapes)
    durations = [d for s in scrapes for d in s.get("ms", [])]
    fig.details = {**runs, "combined": {"idle": idle, "scraped": scraped}}
    problems = idle["problems"] + scraped["problems"]
    if problems:
        fig.details["problems"] = problems
    a, b = idle["median_rate"], scraped["median_rate"]
    ratio = b / a if a and b else None
    fig.rows = [
        Row(
            "book_builder throughput, /metrics scraped every 1 s (books/s)",
            fmt(b),
            f">= {SCRAPE_TARGET:.0%} of not scraped ({fmt(a)})",
            ratio,
            judged(ratio is not None and ratio >= SCRAPE_TARGET and not problems),
            b,
            "books/s",
        ),
        Row(
            "  books per CPU-second of book_builder (incl. its HTTP thread), scraped",
            fmt(scraped["per_cpu_second"]),
            f"not scraped {fmt(idle['per_cpu_second'])} per CPU-s",
            scraped["per_cpu_second"] / idle["per_cpu_second"]
            if scraped["per_cpu_second"] and idle["per_cpu_second"]
            else None,
            "info",
            scraped["per_cpu_second"],
            "books/CPU-s",
        ),
        Row(
            "  scrapes in the windows; duration p50 / max (ms)",
            f"{count} ; {fmt(statistics.median(durations) if durations else None, 1)} / "
            f"{fmt(max(durations) if durations else None, 1)}",
            "one per second, all 200",
            None,
            judged(count > 0 and not problems),
        ),
    ]
    return fig

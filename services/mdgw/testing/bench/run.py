"""The benchmark driver: run the figures, print one table, write the JSON.

    .venv/bin/python scripts/bench.py [--quick] [--long] [--only NAME ...] [--strict]
    .venv/bin/python -m mdgw.testing.bench.run ...   # the same

Default (``make bench``, under 4 minutes): builder throughput with its pass-through
ceiling, latency at 2k and 30k frames/s, the ingestor's receive rate against a bare
websockets client, and builder throughput with /metrics scraped every second against
the same without. ``--long`` (``make bench-long``): the 1,200-symbol scale run and the
10-minute memory soak instead. ``--quick`` (the smoke test; its numbers mean nothing): the
same figures and rows, one repetition each with windows of a fraction of a second, and
every figure and every stage of a figure at the same time.

Progress lines go to stderr, the table to stdout, the JSON to ``--out-dir``
(``var/bench/<UTC timestamp>.json`` and ``var/bench/latest.json``).

Exit status: 0 when every figure was measured and nothing was wrong (wrong books, resyncs,
seq holes are "wrong"); 1 otherwise; with ``--strict`` also 1 when a target is missed.
Without ``--quick``, benchmarks run one after another: on a 2-core machine two at once
would measure each other.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mdgw.testing.bench import ingestor, latency, measure, memory, metrics, scale, throughput
from mdgw.testing.bench.common import progress
from mdgw.testing.bench.report import ERROR, FAIL, FigureResult, Row, render, run_info, write
from mdgw.testing.processes import ROOT

FigureFn = Callable[[Path], FigureResult]


def plan(args: argparse.Namespace) -> list[tuple[str, FigureFn]]:
    t = measure.QUICK if args.quick else measure.Timing()
    lt = measure.LONG_QUICK if args.quick else measure.LongTiming()
    default: list[tuple[str, FigureFn]] = [
        ("throughput", lambda base: throughput.throughput(base, t, args.profile)),
        ("latency", lambda base: latency.latency(base, t)),
        ("ingestor", lambda base: ingestor.ingestor_rate(base, t)),
        ("metrics", lambda base: metrics.metrics_scrape(base, t)),
    ]
    long: list[tuple[str, FigureFn]] = [
        ("scale", lambda base: scale.scale(base, lt)),
        ("memory", lambda base: memory.memory(base, lt)),
    ]
    chosen = long if args.long else default
    if args.only:
        known = dict(default + long)
        unknown = [name for name in args.only if name not in known]
        if unknown:
            raise SystemExit(f"unknown figure(s) {unknown}; choose from {sorted(known)}")
        chosen = [(name, known[name]) for name in args.only]
    return chosen


def reference_loop_ms() -> float:
    """A fixed pure-Python loop (best of 5, ms): this machine's speed right now.

    Shared 2-core VMs change speed with their neighbours; comparing this number between
    runs tells a slower machine from slower code.
    """
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        total, table = 0, dict[int, int]()
        for i in range(200_000):
            total += i * i % 7
            table[i & 1023] = total
        best = min(best, time.perf_counter() - start)
    return best * 1000


def machine_row(results: list[FigureResult]) -> Row:
    """How much CPU other processes took during the windows: the run's noise level."""
    shares: list[float] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "other_cpu" and isinstance(value, int | float):
                    shares.append(float(value))
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    for result in results:
        collect(result.details)
    worst = max(shares) if shares else None
    value = "-" if worst is None else f"{worst:.2f}"
    return Row(
        f"machine: CPU of other processes during windows (cores of {os.cpu_count()}, max)",
        value,
        "~0 for a clean run",
        None,
        "info",
        worst,
        "cores",
    )


def hot_path() -> str:
    """Which build of mdgw's core the services run (mdgw.compiled; the same environment as
    theirs, so the same choice), and book_builder's ZeroMQ I/O (mdgw.runtime.zio). Code
    from before the compiled path, or before the C I/O, has no such module."""
    try:
        from mdgw import compiled  # noqa: PLC0415 (absent from code before it, A/B runs)
    except ImportError:
        return "pure-Python (no mdgw.compiled: code from before the compiled path)"
    try:
        from mdgw.runtime import zio  # noqa: PLC0415 (the same)
    except ImportError:
        return f"{compiled.ACTIVE}; builder I/O pyzmq (no mdgw.runtime.zio)"
    return f"{compiled.ACTIVE}; builder I/O {zio.ACTIVE}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, every figure at once")
    parser.add_argument("--long", action="store_true", help="scale run and memory soak")
    parser.add_argument("--only", action="append", help="run only this figure (repeatable)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--keep", action="store_true", help="keep the processes' directories")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile the builder during the throughput figure (py-spy if installed)",
    )
    args = parser.parse_args()

    started = time.time()
    mode = ("long" if args.long else "default") + ("-quick" if args.quick else "")
    # ipc paths must stay under 107 bytes: a short directory in /tmp, not the repo.
    base = Path(tempfile.mkdtemp(prefix="mdgw-bench-"))
    load = os.getloadavg()
    speed_before = reference_loop_ms()
    progress(f"mdgw hot path: {hot_path()}")
    progress(
        f"mode {mode}; work in {base}; load average {load[0]:.2f}; "
        f"reference loop {speed_before:.1f} ms"
    )

    def figure(name: str, run: FigureFn) -> FigureResult:
        progress(f"--- {name}")
        try:
            return run(base)
        except Exception as exc:  # one figure failing must not hide the others
            progress(f"{name}: could not be measured: {exc}")
            return measure.failed(name, exc)

    # --quick runs the figures at the same time too (their numbers mean nothing), unless
    # the builder is profiled.
    together = args.quick and args.profile is None
    try:
        results = measure.gather([partial(figure, name, run) for name, run in plan(args)], together)
    finally:
        if args.keep:
            progress(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    speed_after = reference_loop_ms()
    rows = [row for result in results for row in result.rows]
    rows.append(machine_row(results))
    rows.append(
        Row(
            "machine: pure-Python reference loop, start / end (ms, lower is faster)",
            f"{speed_before:.1f} / {speed_after:.1f}",
            "compare between runs",
            None,
            "info",
            speed_before,
            "ms",
        )
    )
    rows.append(Row("mdgw hot path (book_builder, ingestor)", hot_path(), "-", None, "info"))
    table = render(rows)
    info = run_info(mode, started)
    info["hot_path"] = hot_path()
    info["loadavg_at_start"] = list(load)
    info["reference_loop_ms"] = [speed_before, speed_after]
    path, _ = write(args.out_dir, info, results, table)
    print(table)
    for result in results:
        if result.error:
            print(f"{result.name}: ERROR: {result.error}")
    progress(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    broken = any(r.error for r in results) or any(
        result.details.get("problems")
        or any(isinstance(v, dict) and v.get("problems") for v in result.details.values())
        for result in results
    )
    missed = any(row.status in (FAIL, ERROR) for row in rows)
    if broken:
        return 1
    return 1 if args.strict and missed else 0

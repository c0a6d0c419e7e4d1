"""Where the book builder's time goes under the throughput benchmark (``--profile DIR``).

With py-spy installed (``.venv/bin/pip install py-spy``; the benchmarks never need it) the
running builder is sampled from outside for the measurement window, which leaves its speed
alone. Without it the builder runs under cProfile instead, which roughly halves its speed:
the throughput figure of such a run is not comparable, only the profile is.

Either way the result is a top-15 table (own time and time including callees) in
``DIR/book_builder-profile.txt`` and the raw data next to it.
"""

from __future__ import annotations

import pstats
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from mdgw.testing.bench.common import progress
from mdgw.testing.processes import PYTHON, Process

__all__ = ["cprofile_argv", "py_spy", "summarize_cprofile", "summarize_py_spy"]

TOP = 15


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def cprofile_argv(service: str, out: Path) -> list[str]:
    return [PYTHON, "-m", "cProfile", "-o", str(out), "-m", f"mdgw.{service}"]


def record(proc: Process, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``proc`` for ``seconds`` (py-spy's raw, collapsed-stack format)."""
    exe = py_spy()
    assert exe is not None
    argv = [exe, "record", "--pid", str(proc.pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"]
    progress(f"profiling {proc.name} (pid {proc.pid}) with py-spy for {seconds:g}s")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


_SCAFFOLDING = ("runpy", "asyncio/", "lifecycle.py", "__main__.py", "<string>", "exec>", "Context")
"""Frames on (nearly) every stack: the interpreter, asyncio and the service's main."""


def _short(frame: str) -> str:
    # "apply_delta (/work/main/services/mdgw/core/book.py:123)" -> "apply_delta (mdgw/core/book.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/services/", "site-packages/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    return f"{name} ({path})"


def summarize_py_spy(raw: Path) -> str:
    """Top functions by own samples and by inclusive samples, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return _table(own, inclusive, total, "samples")


def summarize_cprofile(path: Path) -> str:
    stats = pstats.Stats(str(path))
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    entries = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, _nc, tt, ct, _callers) in entries.items():
        key = _short(f"{name} ({filename}:0)")
        own[key] += round(tt * 1e6)
        inclusive[key] += round(ct * 1e6)
    total = sum(own.values())
    return _table(own, inclusive, total, "µs")


def _table(own: Counter[str], inclusive: Counter[str], total: int, unit: str) -> str:
    if not total:
        return "(no samples)"
    lines = [f"total {total:,} {unit}", "", f"top {TOP} by own time:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(TOP)]
    lines += ["", f"top {TOP} by time including callees (below the event loop):"]
    below = [
        (name, n)
        for name, n in inclusive.most_common()
        if not any(marker in name for marker in _SCAFFOLDING)
    ]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in below[:TOP]]
    return "\n".join(lines)

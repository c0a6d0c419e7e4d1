"""The one table ``make bench`` prints, and the JSON it writes next to it.

Columns: figure, value, target / ceiling, ratio, pass/fail. ``ratio`` is the value divided
by the ceiling or reference measured in the same run where the figure has one (builder
throughput / pass-through, ingestor / bare client), otherwise by the target (a latency of
2.0 means twice the allowed time). ``pass/fail`` is PASS or FAIL against the issue's
target, ``info`` for context rows, ``ERROR`` when the figure could not be measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import zmq

from mdgw.testing.processes import ROOT

__all__ = ["FigureResult", "Row", "render", "run_info", "write"]

PASS, FAIL, INFO, ERROR = "PASS", "FAIL", "info", "ERROR"


@dataclass
class Row:
    figure: str
    value: str
    target: str = "-"
    ratio: float | None = None
    status: str = INFO
    number: float | None = None  # the value as a number, for the JSON
    unit: str = ""


@dataclass
class FigureResult:
    """What one benchmark measured: its rows and every number behind them."""

    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def judged(ok: bool) -> str:
    return PASS if ok else FAIL


def render(rows: list[Row]) -> str:
    header = ("figure", "value", "target / ceiling", "ratio", "pass/fail")
    cells = [
        (r.figure, r.value, r.target, "-" if r.ratio is None else f"{r.ratio:.2f}", r.status)
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(5)]

    def line(cols: tuple[str, ...]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in (1, 3) else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cols, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def run_info(mode: str, started: float) -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
            )
        except OSError:
            return ""
        return out.stdout.strip()

    return {
        "mode": mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cpus": os.cpu_count(),
        "loadavg_at_start": None,
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "platform": platform.platform(),
    }


def write(
    out_dir: Path, info: dict[str, Any], figures: list[FigureResult], table: str
) -> tuple[Path, Path]:
    """``out_dir/<timestamp>.json`` and ``out_dir/latest.json`` (the same content)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "run": info,
        "rows": [asdict(row) for fig in figures for row in fig.rows],
        "figures": {fig.name: {"error": fig.error, "details": fig.details} for fig in figures},
        "table": table,
    }
    text = json.dumps(doc, indent=1, default=str)
    stamp = info["started"].replace(":", "").replace("-", "")
    path = out_dir / f"{stamp}.json"
    path.write_text(text)
    latest = out_dir / "latest.json"
    latest.write_text(text)
    return path, latest

"""One benchmark's set of processes, its endpoints, and a sampler of their CPU and memory.

A :class:`Stage` owns a directory (configs, ipc sockets, logs, results) and the processes
started in it; leaving the ``with`` block stops whatever still runs, last started first. Its
:class:`Sampler` reads ``/proc`` every quarter second, so a figure can say how much CPU each
process and the rest of the machine used during its window.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from mdgw.testing.bench.common import progress
from mdgw.testing.endpoints import Endpoints
from mdgw.testing.processes import Process

__all__ = ["Sampler", "Stage"]

P = TypeVar("P", bound=Process)

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_SAMPLE_S = 0.25


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class Sampler:
    """CPU seconds and RSS of the watched processes, and the machine's busy time, over time."""

    def __init__(self) -> None:
        self.machine: list[tuple[float, float]] = []  # (time, busy CPU seconds of all cores)
        self.cpu: dict[str, list[tuple[float, float]]] = {}
        self.rss: dict[str, list[tuple[float, float]]] = {}
        self._procs: list[Process] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def watch(self, proc: Process) -> None:
        self._procs.append(proc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(_SAMPLE_S)

    def sample(self) -> None:
        """Take a sample now (also called by figures right when a window closes)."""
        with self._lock:
            now = time.time()
            self.machine.append((now, _busy_seconds()))
            for proc in list(self._procs):
                if proc.alive:
                    self.cpu.setdefault(proc.name, []).append((now, proc.cpu_seconds()))
                    self.rss.setdefault(proc.name, []).append((now, proc.rss_mib()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _at(series: list[tuple[float, float]], t: float) -> float | None:
        """The series' value at time t, linearly interpolated; None well outside it.

        Up to one sampling period beyond either end, the end value stands in: a helper that
        exits right as its window closes has its last sample just before.
        """
        if not series or t < series[0][0] - _SAMPLE_S * 2 or t > series[-1][0] + _SAMPLE_S * 2:
            return None
        t = min(max(t, series[0][0]), series[-1][0])
        i = bisect_left(series, (t, float("-inf")))
        if series[i][0] == t or i == 0:
            return series[i][1]
        (t0, v0), (t1, v1) = series[i - 1], series[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def cpu_share(self, name: str, start: float, end: float) -> float | None:
        """CPU the process used in [start, end], as a fraction of one core."""
        series = self.cpu.get(name, [])
        a, b = self._at(series, start), self._at(series, end)
        if a is None or b is None or end <= start:
            return None
        return (b - a) / (end - start)

    def other_share(self, start: float, end: float) -> float | None:
        """CPU used by everything but the watched processes in [start, end] (in cores)."""
        series = list(self.machine)
        a, b = self._at(series, start), self._at(series, end)
        if a is None or b is None or end <= start:
            return None
        ours = 0.0
        for name in list(self.cpu):
            share = self.cpu_share(name, start, end)
            ours += share or 0.0
        return max(0.0, (b - a) / (end - start) - ours)


class Stage:
    """A benchmark's directory and processes; stops them all on exit."""

    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Process] = []
        self._endpoints: list[Endpoints] = []
        self.sampler = Sampler()

    def add(self, proc: P) -> P:
        """Start *proc* (unless it runs) and watch it; it is stopped when the stage ends."""
        if proc.proc is None:
            proc.start()
        self.procs.append(proc)
        self.sampler.watch(proc)
        return proc

    def endpoints(self, suffix: str = "") -> Endpoints:
        """book_builder's sockets in this stage's directory (tcp ports held until the end)."""
        endpoints = Endpoints.in_dir(self.dir, suffix)
        self._endpoints.append(endpoints)
        return endpoints

    def __enter__(self) -> Stage:
        progress(f"{self.name}: starting")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in reversed(self.procs):
            if proc.alive:
                proc.stop(timeout=5.0)
        self.sampler.close()
        for endpoints in self._endpoints:
            endpoints.release()

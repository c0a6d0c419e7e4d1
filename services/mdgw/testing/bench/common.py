"""What the benchmark's driver and its helper processes share: progress lines, the helpers'
command line, a stop flag, CPU burnt on purpose (:func:`spin`, :class:`CpuBudget`)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

__all__ = ["CpuBudget", "StopFlag", "helper_parser", "progress", "spin"]

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (stdout is for the table)."""
    # One write per line: stages that run at once (--quick) do not cut into each other's.
    line = f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}\n"
    sys.stderr.write(line)
    sys.stderr.flush()


def helper_parser(doc: str | None) -> argparse.ArgumentParser:
    """A helper process's argument parser with the two options every helper takes
    (:class:`mdgw.testing.processes.Helper` passes them): ``--out FILE``, its JSON result,
    written when it stops; ``--ready FILE``, created once it is set up."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    return parser


class StopFlag:
    """False until SIGTERM or SIGINT arrives: for the helpers' own plain loops."""

    def __init__(self) -> None:
        self._set = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set


def spin(ns: int) -> None:
    """Burn ``ns`` nanoseconds of this thread's CPU time (the loaded floor's stand-in for a
    service's work: :class:`CpuBudget`, :func:`mdgw.testing.bench.latency.pipeline_floor`).

    The spin reads the thread's CPU clock, not a wall clock: time the thread spends preempted
    does not count, so it burns the CPU it is told whatever the machine's load, as the work
    it stands in for would. It overshoots by at most one clock read (~0.5 µs, a syscall)."""
    if ns <= 0:
        return
    clock = time.thread_time_ns
    end = clock() + ns
    while clock() < end:
        pass


class CpuBudget:
    """Makes a process use ``ns_per_message`` of CPU per message, its own work included:
    before each message, :meth:`spend` spins (:func:`spin`) what the process is short of
    ``ns_per_message`` times the messages so far, on the process's CPU clock since the first.

    A fixed spin per message would come on top of what the process's sockets cost, which
    is not the bare process's cost either: sends spaced by a spin wake ZeroMQ's I/O thread
    per message instead of once per burst (a bare sender at 30k/s: 3.4-4.7 µs per message;
    with a 12.8 µs spin 18.6-24.1 µs, not ~17). Counting the whole process's CPU (every
    thread, the clock reads, the wake-ups) makes the figure what is asked for whatever the
    process's own costs. A process whose own costs exceed the budget spins nothing."""

    def __init__(self, ns_per_message: int) -> None:
        self.ns_per_message = ns_per_message
        self._due: int | None = None  # process CPU time (ns) the messages so far are owed

    def spend(self) -> None:
        now = time.process_time_ns()
        due = (now if self._due is None else self._due) + self.ns_per_message
        self._due = due
        if due > now:
            spin(due - now)

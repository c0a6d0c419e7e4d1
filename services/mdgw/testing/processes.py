"""Real processes with their output in a file: the services and the benchmark helpers.

- :class:`Process`: one child process whose stdout and stderr go to one log file. It can be
  started again after it stopped (the log is appended to). The services log JSON lines,
  read back with :meth:`Process.lines`, :meth:`Process.events`, :meth:`Process.stats`;
  ``/proc`` gives its CPU time and resident memory.
- :class:`Service`: ``python -m mdgw.<module>`` with ``MDGW_CONFIG`` set to a config file.
- :class:`Helper`: ``python -m mdgw.testing.bench.<module>`` with ``--ready FILE`` (created
  once it is set up) and ``--out FILE`` (its JSON result, written when it stops).

The services refuse ``MDGW_*`` variables that are not config keys, so a child gets this
process's environment without them (:func:`clean_env`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import orjson

__all__ = [
    "PYTHON",
    "ROOT",
    "HarnessError",
    "Helper",
    "Process",
    "RunQueueWait",
    "Service",
    "clean_env",
    "cpu_seconds",
    "pid_alive",
    "rss_kib",
    "run_queue_wait_s",
]

# The repository root of a source checkout (the harness runs from one): the services'
# working directory, so that relative paths in configs mean what they mean for `make`.
ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class HarnessError(RuntimeError):
    """A process of the harness died, never got ready, or wrote no result."""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MDGW_* variables (the services refuse unknown
    ones), plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MDGW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def pid_alive(pid: int) -> bool:
    """Whether *pid* runs (of any parent): it exists and is not a zombie (init in a container
    may not reap at once)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def rss_kib(pid: int) -> int:
    """Resident memory of *pid* in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time *pid* has used, threads included (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def run_queue_wait_s(pid: int) -> float:
    """Seconds *pid*'s threads spent runnable but waiting for a CPU (0 if it is gone).

    The kernel's scheduler statistics (``/proc/PID/task/TID/schedstat``, second field:
    nanoseconds on a run queue). On a busy machine this is the time other processes took
    from this one; a test that bounds a recovery in wall time subtracts it, so the bound
    is about what the gateway does, not about who else runs (a process that is slow on its
    own, or that waits on a timer, accumulates none of it).
    """
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                total += int(schedstat.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


class RunQueueWait:
    """Run-queue wait of some processes (:func:`run_queue_wait_s`) since this was made.

    *pids* is asked each time, so a process started later (a restarted service) counts from
    its own start. ``sample()`` notes the total with the wall clock and returns True (it
    rides along in a ``wait_for`` check); ``at(ns)`` is the total of the first sample at or
    after *ns* (the end of the period a test bounds).
    """

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids
        self.base = {pid: run_queue_wait_s(pid) for pid in pids()}
        self.samples: list[tuple[int, float]] = []

    def total(self) -> float:
        return sum(max(0.0, run_queue_wait_s(pid) - self.base.get(pid, 0.0)) for pid in self.pids())

    def sample(self) -> bool:
        self.samples.append((time.time_ns(), self.total()))
        return True

    def at(self, ns: int) -> float:
        return next((total for when, total in self.samples if when >= ns), self.total())


class Process:
    """One child process; stdout and stderr go to *log_path* (appended to on restart)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else clean_env()
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Self:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1
        return self

    # --- state ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid) if self.proc is not None else 0.0

    def run_queue_wait_s(self) -> float:
        return run_queue_wait_s(self.pid) if self.alive else 0.0

    def rss_kib(self) -> int:
        return rss_kib(self.pid) if self.alive else 0

    def rss_mib(self) -> float:
        return self.rss_kib() / 1024

    def _check_alive(self, waiting_for: str) -> None:
        if not self.alive:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise HarnessError(
                f"{self.name} exited ({self.returncode}) while waiting for "
                f"{waiting_for}; its output ends with:\n{tail}"
            )

    # --- the log --------------------------------------------------------------------------

    def raw_lines(self) -> list[bytes]:
        try:
            return [x for x in self.log_path.read_bytes().splitlines() if x]
        except FileNotFoundError:
            return []

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line logged so far (lines that are not JSON objects are skipped, such
        as a line cut in the middle of being written)."""
        out: list[dict[str, Any]] = []
        for raw in self.raw_lines():
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def non_json_lines(self) -> list[bytes]:
        bad: list[bytes] = []
        for raw in self.raw_lines():
            try:
                if not isinstance(orjson.loads(raw), dict):
                    bad.append(raw)
            except orjson.JSONDecodeError:
                bad.append(raw)
        return bad

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") in names]

    def stats(self) -> dict[str, Any] | None:
        """The last stats line (``stats`` or ``stats_final``), None before the first."""
        found = self.events("stats", "stats_final")
        return found[-1] if found else None

    def stats_lines(self) -> list[dict[str, Any]]:
        """Every ``stats`` / ``stats_final`` line, each with ``t`` (epoch seconds)."""
        lines = []
        for line in self.events("stats", "stats_final"):
            stamp = str(line.get("timestamp", "")).replace("Z", "+00:00")
            try:
                line["t"] = datetime.fromisoformat(stamp).timestamp()
            except ValueError:
                continue
            lines.append(line)
        return lines

    # --- waiting (blocking: for scripts and threads, not an event loop) -------------------

    def wait_event(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the JSON log line ``event`` and return it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(event)
            if found:
                return found[0]
            self._check_alive(f"log event {event!r}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name}: no {event!r} log line after {timeout:g}s")
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{self.name} still running after {timeout:g}s") from None

    # --- signals --------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; the exit status (SIGKILL after *timeout*: -9)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Service(Process):
    """One real ``python -m mdgw.<module>`` process reading *config*, logging to *log_path*."""

    def __init__(
        self,
        module: str,
        config: Path,
        log_path: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
        name: str | None = None,
    ) -> None:
        super().__init__(
            name or module, [PYTHON, "-m", f"mdgw.{module}", *args], log_path, env=env, cwd=cwd
        )
        self.module = module
        self.config = config
        self.args = list(args)
        self.env["MDGW_CONFIG"] = str(config)


class Helper(Process):
    """``python -m mdgw.testing.bench.<module> ARGS --out {workdir}/{name}.json --ready ..``."""

    def __init__(self, name: str, module: str, args: Sequence[str], workdir: Path) -> None:
        self.out = workdir / f"{name}.json"
        self.ready = workdir / f"{name}.ready"
        argv = [PYTHON, "-m", f"mdgw.testing.bench.{module}", *args]
        argv += ["--out", str(self.out), "--ready", str(self.ready)]
        super().__init__(name, argv, workdir / f"{name}.log")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the helper's ready file."""
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            self._check_alive("ready")
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name} not ready after {timeout:g}s")
            time.sleep(0.02)

    def result(self) -> dict[str, Any]:
        """The helper's ``--out`` JSON (after it stopped)."""
        if not self.out.exists():
            raise HarnessError(f"{self.name} wrote no result; see {self.log_path}")
        data: dict[str, Any] = orjson.loads(self.out.read_bytes())
        return data

"""Processes of a benchmark: start, wait until ready, watch (/proc), stop; configs and ports.

Every measured process is a real one: the services run as ``python -m mdgw.<service>`` with a
generated TOML (``MDGW_CONFIG``) in the run's own temporary directory, which also holds the
ipc sockets, each process's output and the helpers' result files. Helpers
(``python -m scripts.bench.<name>``) get ``--ready FILE`` (created once they are set up) and
``--out FILE`` (their JSON result, written when they stop).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "PYTHON",
    "ROOT",
    "BenchError",
    "Proc",
    "free_port",
    "gateway_config",
    "progress",
    "stats_lines",
]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_STARTED = time.monotonic()


class BenchError(RuntimeError):
    """A benchmark could not be measured (a process died, never got ready, ...)."""


def progress(message: str) -> None:
    """One progress line on stderr (stdout is for the table)."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """One child process; its stdout and stderr go to ``{workdir}/{name}.log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.out = workdir / f"{name}.json"
        self.ready = workdir / f"{name}.ready"
        base = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
        with self.log.open("wb") as log:
            self.popen = subprocess.Popen(
                list(argv), cwd=ROOT, env={**base, **(env or {})}, stdout=log, stderr=log
            )
        self.pid = self.popen.pid

    @classmethod
    def helper(cls, name: str, module: str, args: Sequence[str], workdir: Path) -> Proc:
        """``python -m scripts.bench.<module> ARGS --out .. --ready ..``."""
        out, ready = workdir / f"{name}.json", workdir / f"{name}.ready"
        argv = [PYTHON, "-m", f"scripts.bench.{module}", *args]
        return cls(name, [*argv, "--out", str(out), "--ready", str(ready)], workdir)

    @classmethod
    def service(cls, name: str, service: str, config: Path, workdir: Path) -> Proc:
        """``python -m mdgw.<service>`` with ``MDGW_CONFIG=config``."""
        argv = [PYTHON, "-m", f"mdgw.{service}"]
        return cls(name, argv, workdir, env={"MDGW_CONFIG": str(config)})

    # ------------------------------------------------------------------ state

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _check_alive(self, waiting_for: str) -> None:
        if not self.alive():
            tail = self.log.read_text(errors="replace")[-2000:]
            raise BenchError(
                f"{self.name} exited ({self.popen.returncode}) while waiting for "
                f"{waiting_for}; its output ends with:\n{tail}"
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the helper's ready file."""
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            self._check_alive("ready")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} not ready after {timeout:g}s")
            time.sleep(0.02)

    def wait_event(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for a service's JSON log line ``event`` and return it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.json_lines():
                if line.get("event") == event:
                    return line
            self._check_alive(f"log event {event!r}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: no {event!r} log line after {timeout:g}s")
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name} still running after {timeout:g}s") from None

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON objects among the process's output lines (services log JSON)."""
        lines: list[dict[str, Any]] = []
        for raw in self.log.read_bytes().splitlines():
            if raw.startswith(b"{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue  # a line cut in the middle of being written
        return lines

    def result(self) -> dict[str, Any]:
        """A helper's ``--out`` JSON (after it stopped)."""
        if not self.out.exists():
            raise BenchError(f"{self.name} wrote no result; see {self.log}")
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (threads included)."""
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_mib(self) -> float:
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * _PAGE / 2**20
        except OSError:
            return 0.0

    # ------------------------------------------------------------------ stop

    def signal(self, signum: int) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


def stats_lines(proc: Proc) -> list[dict[str, Any]]:
    """A service's ``stats`` / ``stats_final`` lines, each with ``t`` (epoch seconds)."""
    lines = []
    for line in proc.json_lines():
        if line.get("event") in ("stats", "stats_final"):
            stamp = str(line.get("timestamp", "")).replace("Z", "+00:00")
            try:
                line["t"] = datetime.fromisoformat(stamp).timestamp()
            except ValueError:
                continue
            lines.append(line)
    return lines


def gateway_config(
    path: Path,
    *,
    raw: str,
    control: str,
    pub: str,
    snapshot: str,
    ws_url: str = "ws://127.0.0.1:9/v5/public",
    symbols: Sequence[str] = (),
    trades: bool = False,
    stats_interval: float = 1.0,
    publish_depth: int = 25,
) -> Path:
    """A gateway TOML for one benchmark (only keys of the config contract, DESIGN §5)."""
    lines = [
        "[bybit]",
        f'ws_url = "{ws_url}"',
        # The blaster serves no /misc/status: no system.status connection to measure.
        "system_status = false",
    ]
    if symbols:
        quoted = ", ".join(f'"{s}"' for s in symbols)
        lines += [
            "[[bybit.streams]]",
            'category = "linear"',
            f"symbols = [{quoted}]",
            "depth = 50",
            f"trades = {'true' if trades else 'false'}",
        ]
    lines += [
        "[zmq]",
        f'raw = "{raw}"',
        f'control = "{control}"',
        f'pub = "{pub}"',
        f'snapshot = "{snapshot}"',
        "[books]",
        f"publish_depth = {publish_depth}",
        "[log]",
        'level = "info"',
        'format = "json"',
        f"stats_interval = {stats_interval:g}",
        "[ingestor]",
        'id = "bench-ingestor"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class StopFlag:
    """False until SIGTERM or SIGINT arrives: for the benchmark's own plain loops."""

    def __init__(self) -> None:
        self._set = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set

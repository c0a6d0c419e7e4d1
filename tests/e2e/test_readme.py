"""The README's first steps as a newcomer types them: `make demo`, then the consumer snippet.

`make demo` runs for real (the repo's Makefile and deploy/ confs, byte for byte) in a
private checkout (conftest.py), so its var/ is its own. Its tcp ports are reserved ones
(mdgw.testing.endpoints), given as MDGW_* overrides instead of the shipped 7100/7101/7200,
which another gateway on this shared machine may hold; the snippet is run exactly as
README.md prints it but for that one endpoint string, which must be the demo config's own
`zmq.pub`.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from mdgw.testing.processes import pid_alive

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
BIN = REPO / ".venv" / "bin"
START_TIMEOUT = 90.0  # make demo: supervisord, four programs, each RUNNING after 2 s
# make's own wait (UP_TIMEOUT, 30 s by default) stretched for a shared, busy CI machine.
MAKE_ENV = {"UP_TIMEOUT": "80", "DOWN_TIMEOUT": "60"}
RESTORE_SIGINT_AND_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def readme_snippet() -> str:
    """The first ```python block after "Attach a consumer" in README.md."""
    readme = (REPO / "README.md").read_text()
    after = readme[readme.index("Attach a consumer") :]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match, "README.md has no python block after 'Attach a consumer'"
    return match.group(1)


class Lines:
    """A subprocess' output, line by line, read by a thread that closes the pipe at EOF."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                self.queue.put(raw.decode("utf-8", "replace"))

    def join(self, timeout: float = 30) -> None:
        """Once the process has exited: wait for EOF, so the pipe is closed."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pipe is still open: a process holds it"

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        pytest.fail(f"no line matching {pattern!r} in {timeout:g}s; got: {self.seen[-20:]}")


def make(checkout: Any, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *targets],
        cwd=checkout.root,
        env={**checkout.env, **MAKE_ENV},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def demo(checkout_factory: Callable[[], Any]) -> Iterator[tuple[Any, subprocess.Popen[bytes]]]:
    checkout = checkout_factory()
    proc = subprocess.Popen(
        # make with SIGINT at its default, as a terminal's shell starts it: a test run that
        # was itself started in the background of a script (CI) inherits SIGINT ignored,
        # and so would make and tail, and Ctrl-C below would stop nothing.
        [sys.executable, "-c", RESTORE_SIGINT_AND_EXEC, "make", "demo"],
        cwd=checkout.root,
        env={**checkout.env, **MAKE_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        yield checkout, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None and not proc.stdout.closed:
            # The test failed before its reader saw EOF: the group is dead, EOF comes.
            proc.stdout.close()
        if checkout.ctl("pid").returncode == 0:
            make(checkout, "down")


def test_the_readme_snippet_receives_books_from_make_demo(demo: tuple[Any, Any]) -> None:
    checkout, proc = demo
    snippet = readme_snippet()
    endpoint = "tcp://127.0.0.1:7100"
    demo_toml = tomllib.loads((REPO / "config" / "demo.toml").read_text())
    assert demo_toml["zmq"]["pub"] == endpoint, "README and config/demo.toml must agree"
    assert snippet.count(endpoint) == 1

    out = Lines(proc.stdout)
    for program in ("book_builder", "ingestor", "printer", "simulator"):
        out.wait_for(rf"^mdgw:{program} +RUNNING", START_TIMEOUT)
    # make demo then follows the printer's log live: config/demo.toml prints bbo lines.
    out.wait_for(r" bbo    (linear|inverse|spot) ", 60)

    consumer = subprocess.Popen(
        [str(BIN / "python"), "-c", snippet.replace(endpoint, checkout.pub)],
        cwd=checkout.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        got = Lines(consumer.stdout)  # type: ignore[arg-type]
        seqs = [int(got.wait_for(r"^\d+ \[", 30).split()[0]) for _ in range(3)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    finally:
        consumer.kill()
        consumer.wait()
        got.join()

    # Ctrl-C in the terminal: SIGINT to the foreground process group. Only the viewing stops.
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    out.join()
    status = make(checkout, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert len(re.findall(r"^mdgw:\w+ +RUNNING", status.stdout, re.M)) == 4, status.stdout

    pids = [int(p) for p in checkout.ctl("pid", "all").stdout.split()]
    down = make(checkout, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped (pids" in down.stdout
    assert not [pid for pid in pids if pid_alive(pid)], pids

"""The real deploy/ confs running the real services against the simulator.

Isolated from a `make up` / `make demo` that may be running: the test has its own copy of
the checkout's layout (conftest.py), so supervisord's var/run and var/log, the ipc sockets
and every tcp port are this test's own. The conf files are the repo's, byte for byte;
only the environment differs from `make demo` (reserved ports, given as MDGW_* overrides).

supervisord runs deploy/demo.conf in the foreground (``-n``) as this test's child, so
that the test can reap it; `make demo` runs the same conf as a daemon. supervisorctl is
called as a person types it, from the checkout's root with no environment of its own.

The tests share one supervisord (module fixture) and run in file order: all RUNNING, each
program SIGKILLed and restarted, the printer seeing every book, then shutdown.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from mdgw.testing.processes import pid_alive

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
BIN = REPO / ".venv" / "bin"
WAIT = REPO / "scripts" / "supervisor_wait.py"
PROGRAMS = ("simulator", "book_builder", "ingestor", "printer")
SERVICES = ("simulator", "book_builder", "ingestor")  # the ones that log JSON
# What config/demo.toml subscribes: every (category, symbol) must get books.
BOOKS = {
    ("linear", "BTCUSDT"),
    ("linear", "ETHUSDT"),
    ("inverse", "BTCUSD"),
    ("inverse", "BTCUSDH26"),
    ("spot", "BTCUSDT"),
    ("spot", "ETHUSDT"),
}
# Depth of each book topic in config/demo.toml, to ask the simulator for the truth.
DEPTHS = {
    ("linear", "BTCUSDT"): 50,
    ("linear", "ETHUSDT"): 50,
    ("inverse", "BTCUSD"): 200,
    ("inverse", "BTCUSDH26"): 200,
    ("spot", "BTCUSDT"): 50,
    ("spot", "ETHUSDT"): 1,
}
START_TIMEOUT = 40.0
RESTART_TIMEOUT = 30.0


@dataclass
class Stack:
    checkout: Any  # conftest.Checkout
    supervisord: subprocess.Popen[bytes]
    pids_seen: set[int] = field(default_factory=set)

    @property
    def var(self) -> Path:
        path: Path = self.checkout.var
        return path

    @property
    def env(self) -> dict[str, str]:
        env: dict[str, str] = self.checkout.env
        return env

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = self.checkout.ctl(*args)
        return result

    def wait_running(self, timeout: float) -> None:
        result = subprocess.run(
            [
                sys.executable,
                str(WAIT),
                "-c",
                str(self.checkout.conf),
                "--timeout",
                str(timeout),
                "running",
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            check=False,
        )
        assert result.returncode == 0, result.stderr + self.ctl("status").stdout

    def status(self) -> dict[str, tuple[str, int]]:
        """``{program: (state, pid)}`` from ``supervisorctl status``."""
        states: dict[str, tuple[str, int]] = {}
        for line in self.ctl("status").stdout.splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[0].startswith("mdgw:"):
                continue
            pid = int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid" else 0
            states[parts[0].removeprefix("mdgw:")] = (parts[1], pid)
        return states

    def pid(self, program: str) -> int:
        result = self.ctl("pid", f"mdgw:{program}")
        pid = int(result.stdout.strip())
        self.pids_seen.add(pid)
        return pid


def read_lines(stream: IO[Any] | None, lines: queue.Queue[Any]) -> threading.Thread:
    """Put the stream's lines on ``lines`` from a thread; the pipe is closed at EOF."""
    assert stream is not None

    def run() -> None:
        with stream:
            for line in stream:
                lines.put(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def stack(checkout_factory: Callable[[], Any]) -> Iterator[Stack]:
    checkout = checkout_factory()
    (checkout.var / "log").mkdir(parents=True)
    (checkout.var / "run").mkdir(mode=0o700)
    with open(checkout.root / "supervisord.out", "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "supervisord"), "-n", "-c", "deploy/demo.conf"],
            cwd=checkout.root,
            env=checkout.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = Stack(checkout, proc)
    try:
        yield stack
    finally:
        if proc.poll() is None:
            stack.ctl("shutdown")
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in stack.pids_seen:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_every_program_is_running(stack: Stack) -> None:
    stack.wait_running(START_TIMEOUT)
    states = stack.status()
    assert set(states) == set(PROGRAMS), states
    assert all(state == "RUNNING" for state, _ in states.values()), states
    for program in PROGRAMS:
        stack.pid(program)
    # Only the unix socket: the conf has no inet_http_server.
    assert (stack.var / "run" / "supervisor.sock").is_socket()
    assert (stack.var / "run" / "supervisor.sock").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_killed_program_is_restarted(stack: Stack, program: str) -> None:
    stack.wait_running(START_TIMEOUT)
    old = stack.pid(program)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + RESTART_TIMEOUT
    state, pid = "?", 0
    while time.monotonic() < deadline:
        state, pid = stack.status().get(program, ("missing", 0))
        if state == "RUNNING" and pid not in (0, old):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"{program} not RUNNING again: {state} pid {pid} (was {old})")
    stack.pids_seen.add(pid)
    assert not pid_alive(old)
    stack.wait_running(RESTART_TIMEOUT)  # and the others still are (or are again)


def test_supervisorctl_restart_and_tail_work_as_typed(stack: Stack) -> None:
    """`supervisorctl -c deploy/supervisord.conf ...` from the root, no environment."""
    stack.wait_running(START_TIMEOUT)
    old = stack.pid("printer")
    result = stack.ctl("restart", "mdgw:printer")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["mdgw:printer: stopped", "mdgw:printer: started"]
    assert stack.pid("printer") != old
    stack.wait_running(RESTART_TIMEOUT)

    tail = subprocess.Popen(
        [
            str(BIN / "supervisorctl"),
            "-c",
            "deploy/supervisord.conf",
            "tail",
            "-f",
            "mdgw:book_builder",
        ],
        cwd=stack.checkout.root,
        env={k: v for k, v in os.environ.items() if not k.startswith("MDGW_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    reader = read_lines(tail.stdout, lines)
    try:
        deadline = time.monotonic() + 20  # stats_interval is 1 s: a stats line comes soon
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if b'"event":"stats"' in line:
                break
        else:
            pytest.fail("supervisorctl tail -f mdgw:book_builder showed no stats line")
    finally:
        tail.kill()
        tail.wait()
        reader.join(30)


def test_the_printer_sees_books_of_every_configured_symbol(stack: Stack) -> None:
    stack.wait_running(START_TIMEOUT)
    errors = stack.var / "printer.err"
    with open(errors, "wb") as err:
        printer = subprocess.Popen(
            [str(BIN / "python"), "-m", "mdgw.printer", "--json", "book", "bbo"],
            env={**stack.env, "MDGW_CONFIG": str(stack.checkout.root / "config" / "demo.toml")},
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=stack.checkout.root,
        )
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert printer.stdout is not None
        with printer.stdout:  # closed at EOF, when the printer has exited
            for line in printer.stdout:
                lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: set[tuple[str, str]] = set()
    channels: set[str] = set()
    checked: dict[tuple[str, str], int] = {}
    wrong: list[str] = []
    sim_port = stack.checkout.simulator_port

    def truth(category: str, symbol: str, u: int) -> dict[str, object] | None:
        query = f"category={category}&symbol={symbol}&depth={DEPTHS[category, symbol]}&u={u}"
        url = f"http://127.0.0.1:{sim_port}/sim/truth?{query}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                body: dict[str, object] = json.loads(reply.read())
        except urllib.error.HTTPError:
            return None  # u too old for the simulator's history, or from before a restart
        return body

    deadline = time.monotonic() + 30
    try:
        # Runs after the kill -9 tests: every book must be right again, not only present.
        while (seen != BOOKS or min(checked.values(), default=0) < 3) and (
            time.monotonic() < deadline
        ):
            try:
                msg = json.loads(lines.get(timeout=1))
            except queue.Empty:
                continue
            channels.add(msg["channel"])
            assert msg["topic"] == f"{msg['channel']}.{msg['category']}.{msg['symbol']}."
            if msg["channel"] == "book":
                key = (msg["category"], msg["symbol"])
                seen.add(key)
                if checked.get(key, 0) < 3:
                    want = truth(key[0], key[1], msg["u"])
                    if want is not None:
                        checked[key] = checked.get(key, 0) + 1
                        depth = msg["depth"]
                        if [msg["bids"], msg["asks"]] != [want["b"][:depth], want["a"][:depth]]:  # type: ignore[index]
                            wrong.append(f"{key} u={msg['u']}")
    finally:
        printer.send_signal(signal.SIGTERM)
        code = printer.wait(timeout=10)
    assert seen == BOOKS, f"no book for {sorted(BOOKS - seen)}; stderr: {errors.read_text()}"
    assert not wrong, f"books differ from the simulator's truth: {wrong}"
    assert set(checked) == BOOKS and min(checked.values()) >= 3, checked
    assert "bbo" in channels
    assert code == 0


def test_the_consumer_example_of_the_docs_works_against_the_gateway(stack: Stack) -> None:
    stack.wait_running(START_TIMEOUT)
    proc = subprocess.Popen(
        [
            str(BIN / "python"),
            str(REPO / "scripts" / "consumer_example.py"),
            stack.checkout.pub,
            stack.checkout.snapshot,
            "book.inverse.BTCUSD.",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("snapshot {")
        for _ in range(3):  # updates of that symbol only, never BTCUSDH26
            assert proc.stdout.readline().startswith("book.inverse.BTCUSD. ")
    finally:
        proc.kill()
        proc.communicate()  # reaps it and closes the stdout pipe


def test_the_asyncio_consumer_example_of_the_docs_works_against_the_gateway(stack: Stack) -> None:
    stack.wait_running(START_TIMEOUT)
    example = REPO / "scripts" / "asyncio_consumer_example.py"
    code = example.read_text()
    docs = (REPO / "docs" / "operations.md").read_text()
    assert code[code.index("import asyncio") :] in docs, "operations.md must quote it verbatim"
    proc = subprocess.Popen(
        [
            str(BIN / "python"),
            str(example),
            stack.checkout.pub,
            stack.checkout.snapshot,
            "book.inverse.BTCUSD.",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = read_lines(proc.stdout, lines)
    try:
        first = lines.get(timeout=30)
        # {} if the book happens to be resyncing at that moment: then updates follow it.
        assert first.startswith("snapshot {"), first
        seqs = []
        for _ in range(3):  # updates of that symbol only, never BTCUSDH26, seq in order
            line = lines.get(timeout=30)
            assert line.startswith("book.inverse.BTCUSD. "), line
            seqs.append(int(line.split()[1]))
        assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    finally:
        proc.kill()
        proc.wait()
        reader.join(30)


def test_shutdown_leaves_no_process_behind(stack: Stack) -> None:
    stack.wait_running(START_TIMEOUT)
    pids = {program: stack.pid(program) for program in PROGRAMS}
    result = stack.ctl("stop", "all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {state for state, _ in stack.status().values()} == {"STOPPED"}, stack.status()
    assert not [pid for pid in pids.values() if pid_alive(pid)], pids
    result = stack.ctl("shutdown")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.supervisord.wait(timeout=30) == 0
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in stack.pids_seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in stack.pids_seen if pid_alive(pid)], pids
    assert not (stack.var / "run" / "supervisord.pid").exists()

    # What supervisord wrote: one JSON object per line from every service, stats included,
    # the supervised printer's lines of config/demo.toml's topics, and a clean stop (exit
    # status 0 after SIGTERM) for each program.
    printed = (stack.var / "log" / "printer.log").read_text().splitlines()
    assert any(" bbo    linear  BTCUSDT " in line for line in printed), printed[:5]
    assert any(" trade  linear  BTCUSDT " in line for line in printed), printed[:5]
    assert not any(" book " in line for line in printed), "printer.topics has no book"
    for program in SERVICES:
        log = (stack.var / "log" / f"{program}.log").read_text().splitlines()
        events = [json.loads(line) for line in log]
        assert events, program
        for event in events:
            assert {"service", "event", "level", "timestamp"} <= event.keys(), event
        assert any(e["event"] == "stats" for e in events), program
    supervisord_log = (stack.var / "log" / "supervisord.log").read_text()
    for program in PROGRAMS:
        assert f"stopped: {program} (exit status 0)" in supervisord_log

"""The real deploy/supervisord.conf running the real services against the simulator.

Isolated from a `make up` / `make demo` that may be running: supervisord's run/ and log/
directories (DEPLOY_VAR_DIR), the ipc sockets and every tcp port are this test's own. The
conf itself is the repo's, unchanged; only its environment differs from `make demo`.

supervisord runs in the foreground (``-n``) as this test's child, so that the test can
reap it; `make up` runs the same conf as a daemon.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mdgw.testing.endpoints import reserve_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
BIN = REPO / ".venv" / "bin"
CONF = REPO / "deploy" / "supervisord.conf"
WAIT = REPO / "scripts" / "supervisor_wait.py"
PROGRAMS = ("simulator", "book_builder", "ingestor")
# What the config below subscribes: every (category, symbol) must get books.
BOOKS = {
    ("linear", "BTCUSDT"),
    ("linear", "ETHUSDT"),
    ("inverse", "BTCUSD"),
    ("inverse", "BTCUSDH26"),
    ("spot", "BTCUSDT"),
    ("spot", "ETHUSDT"),
}
# Depth of each book topic in the config below, to ask the simulator for the truth.
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


def config_text(run: Path, simulator: int) -> str:
    """Like config/demo.toml, with this test's own sockets and port."""
    return f"""
[bybit]
ws_url = "ws://127.0.0.1:{simulator}/v5/public"
connect_timeout = 5
backoff_initial = 0.2
backoff_max = 2.0

[[bybit.streams]]
category = "linear"
symbols = ["BTCUSDT", "ETHUSDT"]
depth = 50
trades = true

[[bybit.streams]]
category = "inverse"
symbols = ["BTCUSD", "BTCUSDH26"]
depth = 200
trades = true

[[bybit.streams]]
category = "spot"
symbols = ["BTCUSDT"]
depth = 50
trades = true

[[bybit.streams]]
category = "spot"
symbols = ["ETHUSDT"]
depth = 1
trades = true

[zmq]
raw = "ipc://{run}/raw.sock"
control = "ipc://{run}/control.sock"
pub = "ipc://{run}/pub.sock"
snapshot = "ipc://{run}/snapshot.sock"

[log]
format = "json"
stats_interval = 1

[metrics]                # no fixed port: tests run side by side
book_builder = 0
ingestor = 0

[ingestor]
id = "e2e-ingestor"

[simulator]
host = "127.0.0.1"
port = {simulator}
"""


@dataclass
class Stack:
    var: Path
    config: Path
    env: dict[str, str]
    supervisord: subprocess.Popen[bytes]
    pids_seen: set[int] = field(default_factory=set)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(CONF), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def wait_running(self, timeout: float) -> None:
        result = subprocess.run(
            [sys.executable, str(WAIT), "--timeout", str(timeout), "running"],
            env=self.env,
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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (BIN / "python").exists() or not (BIN / "supervisord").exists():
        pytest.skip("needs the project's .venv (make venv)")
    base = tmp_path_factory.mktemp("e2e")
    var = base / "var"
    (var / "log").mkdir(parents=True)
    (var / "run").mkdir(mode=0o700)
    config = base / "demo.toml"
    # The simulator's port is held for this process: supervisord restarts the simulator on it.
    config.write_text(config_text(var / "run", reserve_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
    env.update(DEPLOY_VAR_DIR=str(var), DEPLOY_SIMULATORS="1", MDGW_CONFIG=str(config))
    with open(var / "supervisord.out", "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "supervisord"), "-n", "-c", str(CONF)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = Stack(var, config, env, proc)
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
            if alive(pid):
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
    assert not alive(old)
    stack.wait_running(RESTART_TIMEOUT)  # and the others still are (or are again)


def test_the_printer_sees_books_of_every_configured_symbol(stack: Stack) -> None:
    stack.wait_running(START_TIMEOUT)
    errors = stack.var / "printer.err"
    with open(errors, "wb") as err:
        printer = subprocess.Popen(
            [str(BIN / "python"), "-m", "mdgw.printer", "--json"],
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO,
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
    sim_port = next(
        line.split("=")[1].strip()
        for line in stack.config.read_text().splitlines()
        if line.startswith("port =")
    )

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
    zmq = dict(line.split(" = ") for line in stack.config.read_text().splitlines() if " = " in line)
    proc = subprocess.Popen(
        [
            str(BIN / "python"),
            str(REPO / "scripts" / "consumer_example.py"),
            zmq["pub"].strip('"'),
            zmq["snapshot"].strip('"'),
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


def test_shutdown_leaves_no_process_behind(stack: Stack) -> None:
    stack.wait_running(START_TIMEOUT)
    pids = {program: stack.pid(program) for program in PROGRAMS}
    result = stack.ctl("shutdown")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.supervisord.wait(timeout=30) == 0
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in stack.pids_seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in stack.pids_seen if alive(pid)], pids
    assert not (stack.var / "run" / "supervisord.pid").exists()

    # What supervisord wrote: one JSON object per line from every service, stats included,
    # and a clean stop (exit status 0 after SIGTERM) for each program.
    for program in PROGRAMS:
        log = (stack.var / "log" / f"{program}.log").read_text().splitlines()
        events = [json.loads(line) for line in log]
        assert events, program
        for event in events:
            assert {"service", "event", "level", "timestamp"} <= event.keys(), event
        assert any(e["event"] == "stats" for e in events), program
    supervisord_log = (stack.var / "log" / "supervisord.log").read_text()
    for program in PROGRAMS:
        assert f"stopped: {program} (exit status 0)" in supervisord_log

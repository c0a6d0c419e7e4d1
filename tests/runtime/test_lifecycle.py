"""Tests of mdgw.runtime.lifecycle: shutdown without real signals, then with real ones."""

from __future__ import annotations

import asyncio
import json
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from mdgw.runtime.lifecycle import (
    CANCEL_GRACE,
    Shutdown,
    SignalHandlers,
    install_signal_handlers,
    run_service,
    run_until_stopped,
)


@pytest.fixture(autouse=True)
def default_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


# --- Shutdown --------------------------------------------------------------------------


async def test_shutdown_is_requested_once_and_keeps_the_first_reason() -> None:
    shutdown = Shutdown()
    assert not shutdown.requested

    assert shutdown.request("SIGTERM") is True
    assert shutdown.request("SIGINT") is False

    assert shutdown.requested
    assert shutdown.reason == "SIGTERM"
    await asyncio.wait_for(shutdown.wait(), timeout=1)


# --- run_until_stopped -----------------------------------------------------------------


async def test_main_that_returns_after_the_request_exits_0() -> None:
    shutdown = Shutdown()
    drained = []

    async def main(shutdown: Shutdown) -> None:
        await shutdown.wait()
        drained.append(shutdown.reason)

    asyncio.get_running_loop().call_later(0.01, shutdown.request, "test")
    with capture_logs() as logs:
        code = await run_until_stopped(main, shutdown, name="svc", shutdown_timeout=5)

    assert code == 0
    assert drained == ["test"]
    assert {"event": "service_stopped", "reason": "test", "log_level": "info"} in logs


async def test_main_that_returns_on_its_own_exits_0() -> None:
    async def main(shutdown: Shutdown) -> None:
        return None

    assert await run_until_stopped(main, Shutdown(), name="svc") == 0


async def test_main_that_raises_exits_1_and_is_logged() -> None:
    async def main(shutdown: Shutdown) -> None:
        raise RuntimeError("socket exploded")

    with capture_logs() as logs:
        code = await run_until_stopped(main, Shutdown(), name="svc")

    assert code == 1
    [failure] = [entry for entry in logs if entry["event"] == "service_failed"]
    assert isinstance(failure["exc_info"], RuntimeError)


async def test_main_that_misses_the_deadline_is_cancelled_and_exits_1() -> None:
    shutdown = Shutdown()
    cancelled = asyncio.Event()

    async def main(shutdown: Shutdown) -> None:
        try:
            await asyncio.sleep(3600)  # never looks at shutdown
        except asyncio.CancelledError:
            cancelled.set()
            raise

    shutdown.request("test")
    started = time.monotonic()
    with capture_logs() as logs:
        code = await run_until_stopped(main, shutdown, name="svc", shutdown_timeout=0.05)

    assert code == 1
    assert cancelled.is_set()
    assert time.monotonic() - started < 0.05 + CANCEL_GRACE
    assert "shutdown_timeout" in [entry["event"] for entry in logs]


async def test_cancelling_the_runner_cancels_main() -> None:
    main_cancelled = asyncio.Event()

    async def main(shutdown: Shutdown) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            main_cancelled.set()
            raise

    runner = asyncio.create_task(run_until_stopped(main, Shutdown(), name="svc"))
    await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await asyncio.wait_for(main_cancelled.wait(), timeout=1)


# --- signal handling, without signals ----------------------------------------------------


async def test_first_signal_requests_shutdown_second_forces_exit() -> None:
    shutdown = Shutdown()
    forced: list[int] = []
    handlers = SignalHandlers(asyncio.get_running_loop(), shutdown, forced.append)

    handlers.handle(signal.SIGTERM)
    assert shutdown.requested
    assert shutdown.reason == "SIGTERM"
    assert forced == []

    handlers.handle(signal.SIGINT)
    assert forced == [128 + signal.SIGINT] == [130]


async def test_second_sigterm_forces_exit_143() -> None:
    forced: list[int] = []
    handlers = SignalHandlers(asyncio.get_running_loop(), Shutdown(), forced.append)

    handlers.handle(signal.SIGTERM)
    handlers.handle(signal.SIGTERM)

    assert forced == [143]


async def test_install_signal_handlers_installs_and_restores() -> None:
    loop = asyncio.get_running_loop()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    with install_signal_handlers(loop, Shutdown(), force=lambda code: None):
        for sig, handler in before.items():
            assert signal.getsignal(sig) is not handler

    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- run_service in this process ---------------------------------------------------------


def test_run_service_exits_0_after_a_graceful_stop() -> None:
    async def main(shutdown: Shutdown) -> None:
        shutdown.request("done")
        await shutdown.wait()

    with pytest.raises(SystemExit) as caught:
        run_service(main, name="svc")

    assert caught.value.code == 0


def test_run_service_exits_1_when_main_raises() -> None:
    async def main(shutdown: Shutdown) -> None:
        raise ValueError("boom")

    with pytest.raises(SystemExit) as caught:
        run_service(main, name="svc")

    assert caught.value.code == 1


# --- real processes, real signals --------------------------------------------------------

SERVICE = """
import asyncio, sys
from mdgw.runtime.lifecycle import Shutdown, run_service
from mdgw.runtime.logging import configure_logging

configure_logging("testsvc", "info", "json", stream=sys.stderr)

async def main(shutdown: Shutdown) -> None:
    print("ready", flush=True)
    await shutdown.wait()
    print("stopping", flush=True)
{behaviour}

run_service(main, name="testsvc", shutdown_timeout={timeout})
"""

BEHAVIOURS = {
    "graceful": "    await asyncio.sleep(0.05)  # flush, close sockets",
    "stuck": "    await asyncio.sleep(3600)",
    "stubborn": (
        "    while True:\n"
        "        try:\n"
        "            await asyncio.sleep(3600)\n"
        "        except asyncio.CancelledError:\n"
        "            pass"
    ),
}


def start_service(tmp_path: Path, behaviour: str, timeout: float) -> subprocess.Popen[bytes]:
    script = tmp_path / "service.py"
    script.write_text(SERVICE.format(behaviour=BEHAVIOURS[behaviour], timeout=timeout))
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )


def await_line(proc: subprocess.Popen[bytes], expected: str, deadline: float = 30) -> None:
    """Wait until the process prints *expected* on stdout, or fail after *deadline* s."""
    assert proc.stdout is not None
    end = time.monotonic() + deadline
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < end:
            if selector.select(timeout=end - time.monotonic()):
                line = proc.stdout.readline().decode().strip()
                if line == expected:
                    return
                assert line, f"process ended before printing {expected!r}"
    pytest.fail(f"no {expected!r} within {deadline}s")


def stop(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, list[dict[str, object]]]:
    try:
        code = proc.wait(timeout=deadline)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout, proc.stderr:
        logs = [json.loads(line) for line in proc.stderr.read().decode().splitlines()]
    return code, logs


def test_sigterm_stops_a_real_service_with_exit_0(tmp_path: Path) -> None:
    proc = start_service(tmp_path, "graceful", timeout=3.0)
    await_line(proc, "ready")

    proc.send_signal(signal.SIGTERM)
    await_line(proc, "stopping", deadline=5)
    code, logs = stop(proc, deadline=5)

    assert code == 0
    events = [line["event"] for line in logs]
    assert events == ["shutdown_requested", "service_stopped"]
    assert all(line["service"] == "testsvc" for line in logs)


def test_second_sigint_forces_exit_130(tmp_path: Path) -> None:
    proc = start_service(tmp_path, "stuck", timeout=60.0)
    await_line(proc, "ready")

    proc.send_signal(signal.SIGINT)
    await_line(proc, "stopping", deadline=5)
    proc.send_signal(signal.SIGINT)
    code, logs = stop(proc, deadline=5)

    assert code == 130
    assert [line["event"] for line in logs] == ["shutdown_requested", "forced_exit"]


def test_service_missing_its_deadline_is_cancelled_and_exits_1(tmp_path: Path) -> None:
    proc = start_service(tmp_path, "stuck", timeout=0.2)
    await_line(proc, "ready")

    proc.send_signal(signal.SIGTERM)
    code, logs = stop(proc, deadline=5)

    assert code == 1
    assert [line["event"] for line in logs] == [
        "shutdown_requested",
        "shutdown_timeout",
        "service_cancelled",
    ]


def test_service_ignoring_cancellation_is_ended_after_the_grace(tmp_path: Path) -> None:
    proc = start_service(tmp_path, "stubborn", timeout=0.2)
    await_line(proc, "ready")

    proc.send_signal(signal.SIGTERM)
    code, logs = stop(proc, deadline=0.2 + CANCEL_GRACE + 5)

    assert code == 1
    assert [line["event"] for line in logs][-1] == "cancel_ignored"

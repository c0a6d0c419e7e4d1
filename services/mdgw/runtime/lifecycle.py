"""A service's life: start, run until asked to stop, drain within a deadline, exit.

In the manner of uvicorn's server: SIGTERM or SIGINT only *requests* shutdown (a flag the
service's main coroutine watches through :class:`Shutdown`); the service then stops reading,
flushes what it holds, closes its sockets and returns. If it has not returned
``shutdown_timeout`` seconds after the request, it is cancelled. A second signal exits at
once.

Exit status of :func:`run_service`:

- 0: main returned (after a shutdown request, or on its own);
- 1: main raised, or had to be cancelled because it missed the shutdown deadline;
- 128 + signal number (130 for SIGINT, 143 for SIGTERM): a second signal forced the exit.

supervisord's ``stopwaitsecs`` must exceed ``shutdown_timeout`` plus :data:`CANCEL_GRACE`,
so that supervisord never has to SIGKILL a service that is still draining.

Typical ``__main__``::

    settings = settings_or_exit()
    configure_logging("book_builder", settings.log.level, settings.log.format)
    run_service(lambda shutdown: serve(settings, shutdown), name="book_builder")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, NoReturn

from mdgw.runtime.logging import get_logger

__all__ = [
    "CANCEL_GRACE",
    "SHUTDOWN_SIGNALS",
    "Shutdown",
    "SignalHandlers",
    "force_exit",
    "install_signal_handlers",
    "run_service",
    "run_until_stopped",
]

SHUTDOWN_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
# How long a cancelled main gets to unwind before the process exits without it.
CANCEL_GRACE: Final = 1.0

ServiceMain = Callable[["Shutdown"], Awaitable[None]]


class Shutdown:
    """The shutdown request a service's main coroutine watches.

    ``request`` may be called from the event loop's thread only (signal handlers installed
    with ``loop.add_signal_handler`` run there).
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str) -> bool:
        """Ask the service to stop; True for the first request, False for repeats."""
        if self._event.is_set():
            return False
        self.reason = reason
        self._event.set()
        return True

    async def wait(self) -> None:
        """Return once shutdown has been requested."""
        await self._event.wait()


def force_exit(code: int) -> NoReturn:
    """Exit now, skipping cleanup that might hang; flush what was logged first."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class SignalHandlers:
    """SIGTERM/SIGINT handling: the first signal requests shutdown, the next one forces exit.

    Made by :func:`install_signal_handlers`; a context manager that uninstalls itself.
    :meth:`handle` is what the loop calls on a signal, and what tests call instead.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        shutdown: Shutdown,
        force: Callable[[int], object],
    ) -> None:
        self._loop = loop
        self._shutdown = shutdown
        self._force = force
        self._installed: list[signal.Signals] = []

    def handle(self, signum: int) -> None:
        name = signal.Signals(signum).name
        log = get_logger()
        if self._shutdown.request(name):
            log.info("shutdown_requested", reason=name)
            return
        log.warning("forced_exit", signal=name, code=128 + signum)
        self._force(128 + signum)

    def install(self) -> None:
        for sig in SHUTDOWN_SIGNALS:
            self._loop.add_signal_handler(sig, self.handle, sig)
            self._installed.append(sig)

    def uninstall(self) -> None:
        # remove_signal_handler restores the default disposition (KeyboardInterrupt for SIGINT).
        while self._installed:
            self._loop.remove_signal_handler(self._installed.pop())

    def __enter__(self) -> SignalHandlers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop,
    shutdown: Shutdown,
    *,
    force: Callable[[int], object] = force_exit,
) -> SignalHandlers:
    """Make SIGTERM and SIGINT request *shutdown*; a second one calls ``force(128 + signum)``.

    Must be called from the main thread (a limit of ``loop.add_signal_handler``).
    """
    handlers = SignalHandlers(loop, shutdown, force)
    handlers.install()
    return handlers


async def run_until_stopped(
    main: ServiceMain,
    shutdown: Shutdown,
    *,
    name: str,
    shutdown_timeout: float = 3.0,
) -> int:
    """Run ``main(shutdown)`` and return the process exit status (see the module doc).

    Once *shutdown* is requested, main has *shutdown_timeout* seconds to return before it
    is cancelled; a main that then ignores the cancellation for :data:`CANCEL_GRACE`
    seconds more ends the process through :func:`force_exit`.
    """
    log = get_logger()

    async def call_main() -> None:
        await main(shutdown)

    task = asyncio.create_task(call_main(), name=name)
    stop_requested = asyncio.create_task(shutdown.wait(), name=f"{name}-shutdown")
    try:
        await asyncio.wait({task, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=shutdown_timeout)
        if not task.done():
            log.error("shutdown_timeout", timeout=shutdown_timeout, reason=shutdown.reason)
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE)
            if not task.done():
                log.critical("cancel_ignored", grace=CANCEL_GRACE)
                force_exit(1)
    finally:
        stop_requested.cancel()
        if not task.done():  # we were cancelled ourselves
            task.cancel()

    if task.cancelled():
        log.error("service_cancelled", reason=shutdown.reason)
        return 1
    error = task.exception()
    if error is not None:
        log.error("service_failed", exc_info=error)
        return 1
    log.info("service_stopped", reason=shutdown.reason or "main returned")
    return 0


def run_service(main: ServiceMain, *, name: str, shutdown_timeout: float = 3.0) -> NoReturn:
    """Run a service's main coroutine in a fresh event loop with signal handling, then exit.

    For ``__main__``: configure logging first. Never returns; raises SystemExit with the
    status described in the module doc.
    """

    async def supervise() -> int:
        shutdown = Shutdown()
        with install_signal_handlers(asyncio.get_running_loop(), shutdown):
            return await run_until_stopped(
                main, shutdown, name=name, shutdown_timeout=shutdown_timeout
            )

    raise SystemExit(asyncio.run(supervise()))

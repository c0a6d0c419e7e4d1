"""The printer's asyncio loop: SUB + snapshot DEALER in, one line per message out.

Start-up follows the late-joiner recipe (see :mod:`mdgw.core.follower`): subscribe first,
wait until the SUB connection's handshake is done (so the subscription is on its way to
the publisher before the snapshot is taken), ask the snapshot service once per topic spec,
print the items, then print updates newer than them. A hole in a topic's seq is reported on
stderr and that topic is asked for again.

The loop waits for a reader callback on the SUB socket's FD (registered once), then
drains what is waiting with non-blocking receives through a plain shadow of the same
socket, up to ``_BATCH`` per wake-up, as book_builder does: one await per batch, not per
message. Snapshot requests are awaited too; updates that arrive meanwhile stay queued in
the SUB socket, and the follower drops those the snapshot already covers. Every wait also
ends on the shutdown request (:class:`mdgw.runtime.lifecycle.Shutdown`), so SIGTERM and
Ctrl-C stop the printer at once.

This module is also the example to copy for an asyncio consumer of one's own; a shorter
one is in docs/operations.md ("An asyncio consumer").

stdout carries only message lines (``make demo`` and pipes read it); every diagnostic goes
to stderr as one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any, Final, TypeGuard, TypeVar

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.core.follower import SNAPSHOT_CHANNELS, Delivery, Follower
from mdgw.core.render import render_json, render_line
from mdgw.runtime.curve import CurveClient, apply_curve
from mdgw.runtime.lifecycle import Shutdown
from mdgw.runtime.zmqsock import DEFAULT_LINGER_MS, NOBLOCK, make_socket

__all__ = ["Printer", "PrinterOptions"]

_BATCH: Final = 1024  # messages drained per wake-up (then the loop yields)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PrinterOptions:
    pub: str  # the book_builder's pub endpoint
    snapshot: str | None  # its snapshot endpoint; None: no snapshots (--no-snapshot)
    prefixes: tuple[bytes, ...]  # ZeroMQ subscriptions, from wire.subscription()
    json: bool = False
    hwm: int = 100_000
    snapshot_timeout: float = 2.0  # seconds per snapshot request (and for the first connect)
    curve: CurveClient | None = None  # CURVE client keys for tcp endpoints (zmq.curve)


class _StoppedError(Exception):
    """Shutdown was requested while the printer waited for something."""


class Printer:
    """Prints what the pub socket publishes, until ``shutdown`` is requested.

    ``out`` gets the lines (bytes, UTF-8); ``warn`` gets one-line diagnostics. A
    ``BrokenPipeError`` from ``out`` propagates: the caller decides how quietly to exit.
    """

    def __init__(
        self,
        options: PrinterOptions,
        *,
        out: IO[bytes],
        warn: Callable[[str], None],
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.options = options
        self.out = out
        self.warn = warn
        self.clock_ns = clock_ns
        self.follower = Follower()
        self.ctx = zmq.asyncio.Context()
        self.sub: zmq.asyncio.Socket | None = None
        self.dealer: zmq.asyncio.Socket | None = None
        self.lines: list[bytes] = []
        self._stopped: asyncio.Future[None] | None = None
        # For /metrics (mdgw.printer.metrics): plain ints, read from the HTTP thread.
        self.messages: dict[bytes, int] = {}  # channel (b"book", ...) -> messages printed
        self.seq_holes = 0
        self.seq_missed = 0
        self.last_message_ns = 0

    async def run(self, shutdown: Shutdown) -> None:
        """Print until ``shutdown`` is requested (returns then) or ``out`` fails (raises)."""
        self._stopped = asyncio.ensure_future(shutdown.wait())
        try:
            connected = await self._subscribe()
            if self.options.snapshot is not None:
                if connected:
                    for prefix in self.options.prefixes:
                        if prefix == b"" or prefix.startswith(SNAPSHOT_CHANNELS):
                            await self._snapshot(prefix)
                    self._flush()
                else:
                    self.warn(
                        f"no connection to {self.options.pub} within "
                        f"{self.options.snapshot_timeout:g}s; no snapshot, printing live "
                        "updates when they come"
                    )
            await self._follow()
        except _StoppedError:
            pass
        finally:
            self._stopped.cancel()
            self.close()

    def close(self) -> None:
        for sock in (self.sub, self.dealer):
            if sock is not None:
                sock.close(linger=0)
        self.sub = self.dealer = None
        self.ctx.term()

    async def _until_stopped(self, awaitable: Awaitable[_T], timeout: float | None = None) -> _T:
        """Await ``awaitable``; raise _StoppedError on shutdown, TimeoutError after timeout."""
        assert self._stopped is not None
        task = asyncio.ensure_future(awaitable)
        waiting: set[asyncio.Future[Any]] = {task, self._stopped}
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        if self._stopped in done:
            raise _StoppedError
        raise TimeoutError

    # ------------------------------------------------------------------ start

    async def _subscribe(self) -> bool:
        """Subscribe and connect; True once the connection's handshake is done."""
        sub = self.ctx.socket(zmq.SUB)
        self.sub = sub
        sub.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)
        sub.setsockopt(zmq.RCVHWM, self.options.hwm)
        for prefix in self.options.prefixes:
            sub.setsockopt(zmq.SUBSCRIBE, prefix)
        apply_curve(sub, self.options.curve, self.options.pub)
        if self.options.snapshot is None:
            sub.connect(self.options.pub)
            return True
        # The monitor must exist before connect(), or the event may come before we listen.
        monitor = sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            sub.connect(self.options.pub)
            # Connect the snapshot socket now, so both handshakes happen at once.
            self.dealer = self._new_dealer()
            deadline = time.monotonic() + self.options.snapshot_timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    frames = await self._until_stopped(monitor.recv_multipart(), remaining)
                except TimeoutError:
                    return False
                if parse_monitor_message(frames)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return True
        finally:
            sub.disable_monitor()
            monitor.close(linger=0)

    def _new_dealer(self) -> zmq.asyncio.Socket:
        assert self.options.snapshot is not None
        return make_socket(
            self.ctx,
            zmq.DEALER,
            self.options.snapshot,
            bind=False,
            hwm=1000,
            socket_class=zmq.asyncio.Socket,
            curve=self.options.curve,
        )

    # --------------------------------------------------------------- snapshot

    async def _snapshot(self, prefix: bytes) -> None:
        """Ask for the snapshot of ``prefix`` and print its items that are news."""
        if self.dealer is None:
            self.dealer = self._new_dealer()
        dealer = self.dealer
        # A DEALER sends the bare request frame and gets the bare reply (no REQ envelope).
        await self._until_stopped(dealer.send(prefix))
        try:
            frames = await self._until_stopped(
                dealer.recv_multipart(), self.options.snapshot_timeout
            )
        except TimeoutError:
            # The reply may still come: drop this socket so that it cannot be taken for
            # the reply to the next request.
            dealer.close(linger=0)
            self.dealer = None
            self.warn(
                f"snapshot of {_show(prefix)} from {self.options.snapshot}: no reply "
                f"within {self.options.snapshot_timeout:g}s; going on with live updates"
            )
            return
        try:
            items = wire.decode_snapshot_reply(frames)
        except WireError as exc:
            self.warn(f"snapshot of {_show(prefix)}: bad reply: {exc.reason}")
            return
        now_ns = self.clock_ns()
        for topic, payload in items:
            seq, pub_ns = payload.get("seq"), payload.get("pub_ns")
            if not (_is_int(seq) and _is_int(pub_ns)):
                self.warn(f"snapshot item {_show(topic)}: seq and pub_ns must be integers")
                continue
            if self.follower.on_snapshot(topic, seq, pub_ns):
                self._emit(topic, payload, now_ns, snapshot=True)

    # ---------------------------------------------------------------- updates

    async def _follow(self) -> None:
        sub = self.sub
        assert sub is not None and self._stopped is not None
        # The same libzmq socket without the asyncio layer: non-blocking receives need no
        # loop, and cost no Future each.
        sync: zmq.Socket[bytes] = zmq.Socket.shadow(sub.underlying)
        recv = sync.recv_multipart
        follower = self.follower
        # A reader on the socket's FD, registered once, wakes the loop (as in book_builder);
        # awaiting ``sub.poll()`` instead costs a Future, a poller and an epoll_ctl per
        # wake-up, which doubled the printer's CPU at a trickle of ~1000 messages/s.
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        self._stopped.add_done_callback(lambda _: readable.set())
        fd = sync.FD
        loop.add_reader(fd, readable.set)
        try:
            while not self._stopped.done():
                batch: list[list[bytes]] = []
                for _ in range(_BATCH):
                    try:
                        batch.append(recv(NOBLOCK))
                    except zmq.Again:
                        break
                if batch:
                    now_ns = self.clock_ns()
                    for frames in batch:
                        self._on_update(frames, now_ns)
                    self._flush()
                    if self.options.snapshot is not None:
                        for topic in follower.take_resnapshots():
                            await self._snapshot(topic)
                        self._flush()
                if len(batch) == _BATCH:
                    await asyncio.sleep(0)  # more is waiting: let the loop run in between
                    continue
                # ZeroMQ's FD is edge-triggered and only re-armed by reading EVENTS (or a
                # receive that found nothing): clear first, then look, then wait.
                readable.clear()
                if not int(sync.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    await readable.wait()
        finally:
            loop.remove_reader(fd)

    def _on_update(self, frames: list[bytes], now_ns: int) -> None:
        if len(frames) != 2:
            self.warn(f"skipped a message of {len(frames)} frames (expected [topic, payload])")
            return
        topic, data = frames
        try:
            payload = wire.decode_payload(data)
        except WireError as exc:
            self.warn(f"skipped a message on {_show(topic)}: {exc.reason}")
            return
        seq, pub_ns = payload["seq"], payload["pub_ns"]
        if not (_is_int(seq) and _is_int(pub_ns)):
            self.warn(f"skipped a message on {_show(topic)}: seq and pub_ns must be integers")
            return
        outcome = self.follower.on_message(topic, seq, pub_ns)
        if outcome is Delivery.STALE:
            return
        if outcome is not Delivery.DELIVER:
            gap = self.follower.last_gap
            assert gap is not None
            again = (
                "; asking for a snapshot"
                if self.options.snapshot is not None and topic.startswith(SNAPSHOT_CHANNELS)
                else ""
            )
            if outcome is Delivery.GAP:
                self.seq_holes += 1
                self.seq_missed += gap.missed
                self.warn(
                    f"seq hole on {_show(topic)}: expected {gap.expected}, got {gap.got} "
                    f"({gap.missed} missed){again}"
                )
            else:
                self.warn(
                    f"seq went back on {_show(topic)}: {gap.got} after {gap.expected - 1} "
                    f"with a later pub_ns (book_builder restarted){again}"
                )
        self._emit(topic, payload, now_ns, snapshot=False)

    # ----------------------------------------------------------------- output

    def _emit(self, topic: bytes, payload: dict[str, Any], now_ns: int, *, snapshot: bool) -> None:
        channel = topic.split(b".", 1)[0]
        self.messages[channel] = self.messages.get(channel, 0) + 1
        self.last_message_ns = now_ns
        if self.options.json:
            self.lines.append(render_json(topic, payload) + b"\n")
        else:
            line = render_line(topic, payload, now_ns=now_ns, tz=None, snapshot=snapshot)
            self.lines.append(line.encode("utf-8", "backslashreplace") + b"\n")

    def _flush(self) -> None:
        # One write and one flush per batch: every line is out before the printer waits
        # for the next message, which is what a live reader (make demo, a pipe) needs.
        if self.lines:
            data = b"".join(self.lines)
            self.lines.clear()
            self.out.write(data)
            self.out.flush()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(topic: bytes) -> str:
    return repr(bytes(topic).decode("ascii", "backslashreplace")) if topic else "everything"

"""The printer's I/O loop: SUB + snapshot DEALER in, one line per message out.

Start-up follows the late-joiner recipe (see :mod:`mdgw.core.follower`): subscribe first,
wait until the SUB connection's handshake is done (so the subscription is on its way to
the publisher before the snapshot is taken), ask the snapshot service once per topic spec,
print the items, then print updates newer than them. A hole in a topic's seq is reported on
stderr and that topic is asked for again.

Synchronous on purpose: one socket to read, a blocking snapshot request now and then, and
nothing else to do meanwhile. Updates that arrive while a snapshot request is waiting stay
queued in the SUB socket; the follower drops those the snapshot already covers.

stdout carries only message lines (``make demo`` and pipes read it); every diagnostic goes
to stderr as one line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Final, TypeGuard

import zmq
from zmq.utils.monitor import recv_monitor_message

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.core.follower import SNAPSHOT_CHANNELS, Delivery, Follower
from mdgw.core.render import render_json, render_line
from mdgw.runtime.curve import CurveClient, apply_curve
from mdgw.runtime.zmqsock import DEFAULT_LINGER_MS, make_socket

__all__ = ["Printer", "PrinterOptions"]

_BATCH: Final = 1024  # messages drained per readiness wait
_POLL_MS: Final = 100  # how often a wait checks the stop flag


@dataclass(frozen=True, slots=True)
class PrinterOptions:
    pub: str  # the book_builder's pub endpoint
    snapshot: str | None  # its snapshot endpoint; None: no snapshots (--no-snapshot)
    prefixes: tuple[bytes, ...]  # ZeroMQ subscriptions, from wire.subscription()
    json: bool = False
    hwm: int = 100_000
    snapshot_timeout: float = 2.0  # seconds per snapshot request (and for the first connect)
    curve: CurveClient | None = None  # CURVE client keys for tcp endpoints (zmq.curve)


class Printer:
    """Prints what the pub socket publishes, until ``stop`` is set.

    ``out`` gets the lines (bytes, UTF-8); ``warn`` gets one-line diagnostics. A
    ``BrokenPipeError`` from ``out`` propagates: the caller decides how quietly to exit.
    """

    def __init__(
        self,
        options: PrinterOptions,
        *,
        out: IO[bytes],
        warn: Callable[[str], None],
        stop: threading.Event,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.options = options
        self.out = out
        self.warn = warn
        self.stop = stop
        self.clock_ns = clock_ns
        self.follower = Follower()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub: zmq.Socket[bytes] | None = None
        self.dealer: zmq.Socket[bytes] | None = None
        self.lines: list[bytes] = []
        # For /metrics (mdgw.printer.metrics): plain ints, read from the HTTP thread.
        self.messages: dict[bytes, int] = {}  # channel (b"book", ...) -> messages printed
        self.seq_holes = 0
        self.seq_missed = 0
        self.last_message_ns = 0

    def run(self) -> None:
        try:
            connected = self._subscribe()
            if self.options.snapshot is not None:
                if connected:
                    for prefix in self.options.prefixes:
                        if prefix == b"" or prefix.startswith(SNAPSHOT_CHANNELS):
                            self._snapshot(prefix)
                    self._flush()
                elif not self.stop.is_set():
                    self.warn(
                        f"no connection to {self.options.pub} within "
                        f"{self.options.snapshot_timeout:g}s; no snapshot, printing live "
                        "updates when they come"
                    )
            self._follow()
        finally:
            self.close()

    def close(self) -> None:
        for sock in (self.sub, self.dealer):
            if sock is not None:
                sock.close(linger=0)
        self.sub = self.dealer = None
        self.ctx.term()

    # ------------------------------------------------------------------ start

    def _subscribe(self) -> bool:
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
            while not self.stop.is_set():
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    return False
                if monitor.poll(min(remaining_ms, _POLL_MS)):
                    event = recv_monitor_message(monitor)
                    if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        return True
            return False
        finally:
            sub.disable_monitor()
            monitor.close(linger=0)

    def _new_dealer(self) -> zmq.Socket[bytes]:
        assert self.options.snapshot is not None
        return make_socket(
            self.ctx,
            zmq.DEALER,
            self.options.snapshot,
            bind=False,
            hwm=1000,
            curve=self.options.curve,
        )

    # --------------------------------------------------------------- snapshot

    def _snapshot(self, prefix: bytes) -> None:
        """Ask for the snapshot of ``prefix`` and print its items that are news."""
        if self.dealer is None:
            self.dealer = self._new_dealer()
        dealer = self.dealer
        # A DEALER sends the bare request frame and gets the bare reply (no REQ envelope).
        dealer.send(prefix)
        deadline = time.monotonic() + self.options.snapshot_timeout
        while True:
            if self.stop.is_set():
                return
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                # The reply may still come: drop this socket so that it cannot be taken
                # for the reply to the next request.
                dealer.close(linger=0)
                self.dealer = None
                self.warn(
                    f"snapshot of {_show(prefix)} from {self.options.snapshot}: no reply "
                    f"within {self.options.snapshot_timeout:g}s; going on with live updates"
                )
                return
            if dealer.poll(min(remaining_ms, _POLL_MS)):
                frames = dealer.recv_multipart()
                break
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

    def _follow(self) -> None:
        sub = self.sub
        assert sub is not None
        recv = sub.recv_multipart
        follower = self.follower
        while not self.stop.is_set():
            if not sub.poll(_POLL_MS, zmq.POLLIN):
                continue
            batch: list[list[bytes]] = []
            for _ in range(_BATCH):
                try:
                    batch.append(recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
            now_ns = self.clock_ns()
            for frames in batch:
                self._on_update(frames, now_ns)
            self._flush()
            if self.options.snapshot is not None:
                for topic in follower.take_resnapshots():
                    self._snapshot(topic)
                self._flush()

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

"""One Bybit websocket connection slot: connect, subscribe, read, ping, watch, reconnect.

A :class:`Connection` owns a fixed group of topics of one category (one group of
:func:`mdgw.core.connection_plan.plan_connections`) and keeps a websocket open for them for as
long as the process runs: every websocket it opens is a *session* with its own ``conn_id`` and
its own envelope sequence 1, 2, 3...

Per session, three tasks:

- the reader (the hot path): ``recv`` -> timestamp -> classify by the first bytes -> for
  data, one non-blocking PUSH of envelope + frame. It never awaits anything but ``recv``;
  when websockets already holds several frames, ``recv`` returns each without a trip
  through the event loop, so a burst is drained in one go. Acks, pongs and errors are
  handled here too, locally, and anything they require sending goes to the outbox;
- the writer: sends the outbox (subscribe/unsubscribe requests, pings) in order, so that
  the reader never waits on the socket's write buffer;
- the keepalive: ``{"op":"ping"}`` every ``ping_interval``, the silence watchdog (abort a
  websocket that delivered no frame at all for ``silence_timeout``), the subscription
  deadlines, and the backoff reset once a session has proved healthy.

What Bybit answers is decided by :class:`~mdgw.core.subscriptions.Subscriptions`; this
module only moves bytes, keeps counters and logs. One websocket's own state, how it is
opened and closed and how its end is described, are in :mod:`.session`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, Final

import zmq
from structlog.typing import FilteringBoundLogger
from websockets.exceptions import ConnectionClosed

from mdgw.core.backoff import Backoff, ConnectionRateLimiter
from mdgw.core.bybit_control import Control, FrameKind, classify, decode_control, ping_request
from mdgw.core.conn_ids import ConnIds
from mdgw.core.errors import ParseError
from mdgw.core.subscriptions import ResyncDecision, Subscriptions
from mdgw.core.wire import RawEncoder
from mdgw.ingestor.counters import ConnectionCounters
from mdgw.ingestor.metrics import (
    EXCHANGE_SAMPLE_NS,
    ConnectionState,
    connection_state,
    frame_ts_ms,
    reconnect_label,
)
from mdgw.ingestor.session import (
    MESSAGE_TOO_BIG,
    ConnectionTiming,
    Session,
    close_fast,
    close_reason,
    connect_failure,
    open_websocket,
)
from mdgw.runtime.metrics import EXCHANGE_LATENCY_BOUNDS, Buckets
from mdgw.runtime.ratelog import RateLimitedLog
from mdgw.runtime.zmqsock import NOBLOCK, fast_send

__all__ = ["Connection"]

# Upper bound of the keepalive task's sleep: the watchdog's resolution.
MAX_TICK: Final = 1.0


class Connection:
    """One connection slot: a websocket to ``url`` kept subscribed to ``topics``."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        subscriptions: Subscriptions,
        encoder: RawEncoder,
        push: zmq.Socket[Any],
        conn_ids: ConnIds,
        limiter: ConnectionRateLimiter,
        backoff: Backoff,
        timing: ConnectionTiming,
        max_frame_bytes: int,
        log: FilteringBoundLogger,
        ratelog: RateLimitedLog,
    ) -> None:
        self.name = name
        self.url = url
        self.category = subscriptions.category
        self.subscriptions = subscriptions
        self.counters = ConnectionCounters()
        self.last_rtt: float | None = None  # seconds, of the last answered ping
        # For metrics and /health (mdgw.ingestor.metrics), read on the event loop.
        self.reconnect_reasons: dict[str, int] = {}  # reconnect_label -> count
        self.last_frame_at: float | None = None  # monotonic, to the keepalive's tick
        self.exchange_latency = Buckets(EXCHANGE_LATENCY_BOUNDS)  # sampled: one per 10 ms
        self._encoder = encoder
        self._push = push
        self._conn_ids = conn_ids
        self._limiter = limiter
        self._backoff = backoff
        self._timing = timing
        self._max_frame_bytes = max_frame_bytes
        self._log = log.bind(connection=name, category=self.category)
        self._ratelog = ratelog
        self._session: Session | None = None
        self._ping_sent: float | None = None

    @property
    def up(self) -> bool:
        return self._session is not None

    @property
    def conn_id(self) -> int:
        """The envelope ``conn_id`` of the open websocket; 0 while none is open."""
        session = self._session
        return 0 if session is None else session.conn_id

    @property
    def topics(self) -> tuple[str, ...]:
        return self.subscriptions.topics

    @property
    def state(self) -> ConnectionState:
        return connection_state(self.up, self.subscriptions)

    def _count_reconnect(self, reason: str) -> None:
        label = reconnect_label(reason)
        self.reconnect_reasons[label] = self.reconnect_reasons.get(label, 0) + 1

    # ------------------------------------------------------------------ control

    def request_resync(self, topic: str) -> ResyncDecision:
        """Start unsubscribe + subscribe of ``topic`` (no-op unless the decision is STARTED)."""
        decision, requests = self.subscriptions.request_resync(topic, time.monotonic())
        if decision is ResyncDecision.STARTED:
            self.counters.resyncs += 1
            self._enqueue(requests)
        return decision

    def inject(self, frame: bytes) -> bool:
        """Forward a frame made here (the REST snapshot of an ``orderbook.full`` topic) as
        the next DATA frame of the current websocket, in order with what it received.

        False when no websocket is up (the book builder asks again) or the push would block.
        """
        session = self._session
        if session is None:
            return False
        seq = session.data_frames + 1
        session.data_frames = seq  # dropped or not, the seq advances: no silent holes
        try:
            self._push.send(
                self._encoder.data(session.conn_id, seq, time.time_ns(), frame), zmq.NOBLOCK
            )
        except zmq.Again:
            self.counters.dropped += 1
            return False
        self.counters.forwarded += 1
        return True

    def reconnect(self, reason: str) -> bool:
        """Replace the websocket now (the book builder asked: resubscribing did not help)."""
        session = self._session
        if session is None or session.ws.transport is None:
            return False
        session.reason = reason
        session.log.warning("connection_replaced", reason=reason)
        session.ws.transport.abort()  # the reader sees ConnectionClosedError, run() reconnects
        return True

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Keep a websocket open and subscribed until cancelled. Never gives up."""
        while True:
            await self._respect_rate_limit()
            counters = self.counters
            if counters.attempts:
                counters.reconnects += 1
            counters.attempts += 1
            self._limiter.record(time.monotonic())
            try:
                ws = await open_websocket(self.url, self._timing, self._max_frame_bytes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                counters.failures += 1
                self._count_reconnect("connect failed")
                delay = self._backoff.next_delay()
                self._log.warning(
                    "connect_failed",
                    url=self.url,
                    reason=connect_failure(exc),
                    attempt=self._backoff.attempts,
                    retry_in=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            session = Session(ws, self._conn_ids.next(), time.monotonic(), self._log)
            try:
                reason = await self._run_session(session)
                self._count_reconnect(reason)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug: log it, and keep the slot alive all the same
                session.log.exception("session_failed", url=self.url)
                reason = f"{type(exc).__name__}: {exc}"
                self._count_reconnect("session failed")
            delay = self._backoff.next_delay()
            session.log.warning(
                "connection_down",
                reason=reason,
                data_frames=session.data_frames,
                uptime=round(time.monotonic() - session.started, 3),
                retry_in=round(delay, 3),
            )
            await asyncio.sleep(delay)

    async def _respect_rate_limit(self) -> None:
        while True:
            wait = self._limiter.delay_until_allowed(time.monotonic())
            if wait <= 0:
                return
            self._log.warning(
                "connection_rate_capped",
                max_new_connections=self._limiter.max_events,
                window=self._limiter.window,
                wait=round(wait, 3),
            )
            await asyncio.sleep(wait)

    async def _run_session(self, session: Session) -> str:
        """Serve one open websocket until it closes; returns why it closed."""
        ws, conn_id = session.ws, session.conn_id
        self._session = session
        self._ping_sent = None
        self._send_envelope(self._encoder.conn_up(conn_id, time.time_ns(), slot=self.name))
        requests = self.subscriptions.on_connect(session.started)
        session.log.info(
            "connection_up",
            url=self.url,
            topics=len(self.topics),
            refused=len(self.subscriptions.refused),
            requests=len(requests),
        )
        self._enqueue(requests)
        writer = asyncio.create_task(
            self._guarded(self._write(session), session, "writer"), name=f"{self.name}-writer"
        )
        keepalive = asyncio.create_task(
            self._guarded(self._keepalive(session), session, "keepalive"),
            name=f"{self.name}-keepalive",
        )
        try:
            await self._read(session)
            reason = "closed"  # not reached: _read ends by raising ConnectionClosed
        except ConnectionClosed as exc:
            reason = session.reason or close_reason(exc)
            if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG:
                self.counters.oversized += 1
        finally:
            # Reading has stopped: the session's last DATA seq is final.
            writer.cancel()
            keepalive.cancel()
            self.subscriptions.on_disconnect()
            self._session = None
            self._send_envelope(
                self._encoder.conn_down(conn_id, session.data_frames, time.time_ns())
            )
            await asyncio.gather(writer, keepalive, return_exceptions=True)
            await close_fast(ws)
        return reason

    # ------------------------------------------------------------------ hot path

    async def _read(self, session: Session) -> None:
        recv = session.ws.recv
        sock = self._push
        push = fast_send  # the Cython send: see mdgw.runtime.zmqsock
        encode = self._encoder.data
        time_ns = time.time_ns
        data = FrameKind.DATA
        noblock = NOBLOCK
        again = zmq.Again
        counters = self.counters
        conn_id = session.conn_id
        dropping = False
        # Bybit's ts -> recv latency: one frame per EXCHANGE_SAMPLE_NS at most, so the
        # per-frame cost is this comparison.
        sample_at = 0
        while True:
            frame = await recv(False)  # bytes, text frames not UTF-8 decoded
            recv_ns = time_ns()
            counters.frames_in += 1
            kind = classify(frame)
            if kind is data:
                seq = session.data_frames + 1
                session.data_frames = seq  # advances for dropped frames: the builder sees holes
                try:
                    push(sock, encode(conn_id, seq, recv_ns, frame), noblock)
                except again:
                    counters.dropped += 1
                    if not dropping:
                        dropping = True
                        session.log.warning("raw_dropping", seq=seq)
                    continue
                counters.forwarded += 1
                if dropping:
                    dropping = False
                    session.log.info("raw_resumed", seq=seq)
                if recv_ns >= sample_at:
                    sample_at = recv_ns + EXCHANGE_SAMPLE_NS
                    ts_ms = frame_ts_ms(frame)
                    if ts_ms is not None:  # clocks apart: a negative delay counts as 0
                        self.exchange_latency.observe_ns(max(0, recv_ns - ts_ms * 1_000_000))
            else:
                self._on_control_frame(kind, frame, session)

    def _on_control_frame(self, kind: FrameKind, frame: bytes, session: Session) -> None:
        if kind is FrameKind.UNKNOWN:
            self.counters.unknown += 1
            self._ratelog.emit(
                "unknown_frame",
                {
                    "conn_id": session.conn_id,
                    "category": self.category,
                    "sample": frame[:200].decode("utf-8", "replace"),
                },
            )
            return
        try:
            control = decode_control(frame)
        except ParseError:  # classify() already parsed it; kept for the type checker
            self.counters.unknown += 1
            return
        if control.kind is FrameKind.PONG:
            self.counters.pongs += 1
            if self._ping_sent is not None:
                self.last_rtt = time.monotonic() - self._ping_sent
                self._ping_sent = None
            return
        if control.kind is FrameKind.ACK:
            self.counters.acks += 1
        else:
            self.counters.errors += 1
        self._on_answer(control, session)

    def _on_answer(self, control: Control, session: Session) -> None:
        outcome = self.subscriptions.on_control(control, time.monotonic())
        log = session.log
        if not outcome.matched:
            self._ratelog.emit(
                "unmatched_answer",
                {"conn_id": session.conn_id, "op": control.op, "ret_msg": control.ret_msg},
            )
        elif control.kind is FrameKind.ERROR:
            if outcome.refused:
                # The only time these topics are logged: they are never requested again.
                log.error(
                    "topics_refused",
                    ret_msg=control.ret_msg,
                    topics=list(outcome.refused),
                )
            if outcome.retried or outcome.subscribed:
                log.warning(
                    "batch_rejected",
                    ret_msg=control.ret_msg,
                    already_subscribed=list(outcome.subscribed),
                    retried=list(outcome.retried),
                )
            if outcome.op == "unsubscribe":
                log.warning(
                    "unsubscribe_failed",
                    ret_msg=control.ret_msg,
                    topics=list(outcome.topics),
                )
        else:
            log.debug("answered", op=outcome.op, topics=len(outcome.topics))
        if outcome.resubscribed:
            log.info("resync_resubscribe", topics=list(outcome.resubscribed))
        self._enqueue(outcome.requests)

    # ------------------------------------------------------------- other tasks

    def _enqueue(self, requests: list[bytes]) -> None:
        session = self._session
        if session is None:
            return
        for request in requests:
            session.outbox.put_nowait(request)

    async def _write(self, session: Session) -> None:
        ws = session.ws
        outbox = session.outbox
        while True:
            request = await outbox.get()
            # Bybit expects JSON in text frames.
            await ws.send(request, text=True)

    async def _keepalive(self, session: Session) -> None:
        timing = self._timing
        tick = min(MAX_TICK, timing.ping_interval, timing.silence_timeout / 4)
        counters = self.counters
        subs = self.subscriptions
        seen = counters.frames_in
        last_frame = session.started
        next_ping = session.started + timing.ping_interval
        healthy = False
        while True:
            now = time.monotonic()
            if counters.frames_in != seen:
                seen = counters.frames_in
                last_frame = self.last_frame_at = now
            if now - last_frame >= timing.silence_timeout:
                counters.silences += 1
                session.reason = f"silent for {now - last_frame:.1f}s"
                session.log.warning("connection_silent", silent=round(now - last_frame, 3))
                if session.ws.transport is not None:
                    session.ws.transport.abort()  # the reader sees ConnectionClosedError
                return
            if now >= next_ping:
                self._enqueue([ping_request()])
                if self._ping_sent is None:
                    self._ping_sent = now
                next_ping = now + timing.ping_interval
            deadline = subs.next_deadline()
            if deadline is not None and deadline <= now:
                outcome = subs.poll(now)
                if outcome.resubscribed:
                    session.log.info(
                        "resync_resubscribe",
                        topics=list(outcome.resubscribed),
                        unsubscribe_answered=False,
                    )
                if outcome.unanswered:
                    session.log.warning(
                        "requests_unanswered",
                        topics=list(outcome.unanswered),
                    )
                self._enqueue(outcome.requests)
                deadline = subs.next_deadline()
            if (
                not healthy
                and session.data_frames
                and now - session.started >= timing.healthy_after
            ):
                healthy = True
                self._backoff.reset()
            wake = min(next_ping, last_frame + timing.silence_timeout, now + tick)
            if deadline is not None:
                wake = min(wake, deadline)
            await asyncio.sleep(max(0.0, wake - time.monotonic()))

    def _send_envelope(self, envelope: bytes) -> None:
        try:
            self._push.send(envelope, zmq.NOBLOCK)
        except zmq.Again:
            self.counters.events_dropped += 1

    async def _guarded(self, work: Coroutine[Any, Any, None], session: Session, what: str) -> None:
        """Run a session helper task; if it fails, end the session rather than limp on."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except ConnectionClosed:
            pass  # the reader sees it too and reports it
        except Exception:
            session.log.exception("session_task_failed", task=what)
            session.reason = f"{what} failed"
            if session.ws.transport is not None:
                session.ws.transport.abort()

"""The ingestor's asyncio shell: Bybit websockets in, raw envelopes out (docs/ingestor.md).

- :func:`mdgw.core.connection_plan.plan_streams` turns the configured streams (and the
  command line's selection) into connection slots.
- :class:`Ingestor` runs one :class:`~mdgw.ingestor.connection.Connection` task per slot,
  all pushing on one PUSH socket (connected to ``zmq.raw``, IMMEDIATE, sends never block),
  plus three small tasks: a heartbeat envelope per category every second, the control
  reader (resync requests from the book builder, on a SUB socket), and the stats line.

Shutdown: stop the connection tasks (each stops reading, closes its websocket fast and
sends CONN_DOWN), log the last stats line, close the sockets with a short linger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import asdict
from typing import Any, Final

import structlog
import zmq
import zmq.asyncio

from mdgw import compiled
from mdgw.core.backoff import Backoff, ConnectionRateLimiter
from mdgw.core.bybit_spec import CONNECTION_WINDOW, SYSTEM_STATUS_PATH, SYSTEM_STATUS_TOPIC
from mdgw.core.conn_ids import ConnIds
from mdgw.core.connection_plan import Selection, owns_system_status, plan_streams
from mdgw.core.errors import WireError
from mdgw.core.subscriptions import ResyncDecision, Subscriptions
from mdgw.core.wire import RESYNC, RawEncoder, ResyncRequest, decode_resync
from mdgw.ingestor.connection import Connection
from mdgw.ingestor.counters import ConnectionCounters, ControlCounters
from mdgw.ingestor.metrics import IngestorMetrics
from mdgw.ingestor.session import ConnectionTiming
from mdgw.ingestor.snapshots import SnapshotFetcher, is_full_topic
from mdgw.runtime.curve import client_keys_or_exit
from mdgw.runtime.lifecycle import Shutdown
from mdgw.runtime.logging import get_logger
from mdgw.runtime.metrics import MetricsEndpoint
from mdgw.runtime.ratelog import RateLimitedLog
from mdgw.runtime.settings import Settings
from mdgw.runtime.zmqsock import make_socket

__all__ = [
    "HEARTBEAT_INTERVAL",
    "Ingestor",
    "serve",
]

HEARTBEAT_INTERVAL: Final = 1.0
# Connection tasks get this long to close their websockets at shutdown.
STOP_TIMEOUT: Final = 1.5
# Unsent envelopes (the last CONN_DOWNs) get this long to leave at exit.
LINGER_MS: Final = 200
# How long to wait at start for the raw socket's connection to the book builder.
BUILDER_WAIT: Final = 1.0


class Ingestor:
    """The whole ingestor process minus argument parsing: run it with :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        *,
        ingestor_id: str | None = None,
        selection: Selection = Selection(),
        rng: random.Random | None = None,
        healthy_after: float | None = None,
        metrics: MetricsEndpoint | None = None,
    ) -> None:
        self.settings = settings
        self.id = ingestor_id or settings.ingestor.id
        self.groups = plan_streams(settings.bybit.streams, selection)
        self.system_status = settings.bybit.system_status and owns_system_status(
            settings.bybit.streams, selection
        )
        self._rng = rng or random.Random(int.from_bytes(os.urandom(16), "big"))
        bybit = settings.bybit
        timing = ConnectionTiming(
            ping_interval=bybit.ping_interval,
            silence_timeout=bybit.silence_timeout,
            connect_timeout=bybit.connect_timeout,
        )
        if healthy_after is not None:
            timing = ConnectionTiming(
                timing.ping_interval, timing.silence_timeout, timing.connect_timeout, healthy_after
            )
        self.timing = timing
        self.control = ControlCounters()
        # CURVE client keys for tcp raw/control sockets (None when off); exit 78 if missing.
        self._curve = client_keys_or_exit(settings, (settings.zmq.raw, settings.zmq.control))
        self.connections: list[Connection] = []
        # Every connection carrying a topic (several with `connections` > 1).
        self._owners: dict[tuple[str, str], list[Connection]] = {}
        self._encoders = {cat: RawEncoder(self.id, cat) for cat in self.groups}
        self._log = get_logger()
        self._ratelog = RateLimitedLog(self._log, interval=10.0)
        self._last_stats: tuple[float, int] = (time.monotonic(), 0)
        self.snapshots = SnapshotFetcher(
            rest_url=bybit.rest_url,
            timeout=bybit.rest_timeout,
            max_per_second=bybit.rest_max_per_second,
            backoff=lambda: Backoff(
                min(0.2, bybit.backoff_initial), bybit.backoff_max, rng=self._rng.random
            ),
            log=self._log,
        )
        # /metrics and /health from their own thread (None: metrics.ingestor = 0)
        self.metrics = None if metrics is None else IngestorMetrics(self, metrics)

    # ------------------------------------------------------------------ stats

    def totals(self) -> ConnectionCounters:
        total = ConnectionCounters()
        for conn in self.connections:
            total.add(conn.counters)
        return total

    def stats(self) -> dict[str, Any]:
        """Counters and gauges of the stats line, summed over the connections."""
        total = self.totals()
        rtts = [c.last_rtt for c in self.connections if c.last_rtt is not None]
        return {
            **asdict(total),
            "connections_up": sum(c.up for c in self.connections),
            "connections": len(self.connections),
            "refused_topics": sum(len(c.subscriptions.refused) for c in self.connections),
            "ping_rtt_ms": round(max(rtts) * 1000, 2) if rtts else None,
            **asdict(self.control),
            **{f"rest_{k}": v for k, v in asdict(self.snapshots.counters).items()},
        }

    def _log_stats(self, **extra: Any) -> None:
        """The stats line, with the frame rate since the previous one."""
        fields = self.stats()
        now = time.monotonic()
        since, frames_before = self._last_stats
        self._last_stats = (now, fields["frames_in"])
        rate = (fields["frames_in"] - frames_before) / max(now - since, 1e-9)
        self._log.info("stats", rate=round(rate, 1), **fields, **extra)

    # ------------------------------------------------------------------ run

    async def run(self, shutdown: Shutdown) -> None:
        """Serve until ``shutdown`` is requested; then stop within about two seconds."""
        settings = self.settings
        structlog.contextvars.bind_contextvars(ingestor=self.id)
        ctx: zmq.Context[Any] = zmq.Context()
        tasks: list[asyncio.Task[None]] = []
        try:
            push = make_socket(
                ctx,
                zmq.PUSH,
                settings.zmq.raw,
                bind=False,
                hwm=settings.zmq.hwm,
                linger_ms=LINGER_MS,
                curve=self._curve,
            )
            sub = make_socket(
                ctx,
                zmq.SUB,
                settings.zmq.control,
                bind=False,
                hwm=settings.zmq.hwm,
                linger_ms=0,
                socket_class=zmq.asyncio.Socket,
                curve=self._curve,
            )
            sub.setsockopt(zmq.SUBSCRIBE, RESYNC)
            await self._wait_for_builder(push)
            self._build_connections(push)
            tasks = [asyncio.create_task(c.run(), name=c.name) for c in self.connections]
            tasks += [
                asyncio.create_task(self._heartbeat(push), name="heartbeat"),
                asyncio.create_task(self._read_control(sub), name="control"),
                asyncio.create_task(self._report(), name="stats"),
                asyncio.create_task(self.snapshots.run(), name="rest-snapshots"),
            ]
            self._log.info(
                "ingestor_started",
                ws_url=settings.bybit.ws_url,
                raw=settings.zmq.raw,
                control=settings.zmq.control,
                connections={cat: len(groups) for cat, groups in self.groups.items()},
                topics=sum(len(g) for groups in self.groups.values() for g in groups),
                hot_path=compiled.ACTIVE,
            )
            if self.metrics is not None:
                self.metrics.start(asyncio.get_running_loop())
                endpoint = self.metrics.endpoint
                self._log.info("metrics_listening", url=endpoint.url, port=endpoint.port)
            stop = asyncio.create_task(shutdown.wait(), name="shutdown")
            tasks.append(stop)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stop}:
                # These tasks loop forever: one that ended is a bug. Exit, and let the
                # supervisor restart us with a clean slate.
                task.result()
                raise RuntimeError(f"task {task.get_name()} ended")
        finally:
            if self.metrics is not None:
                self.metrics.close()
            # Connection tasks stop reading, close their websocket and send CONN_DOWN.
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
                self._log_stats(final=True)
            # Closes both sockets; the PUSH keeps LINGER_MS to deliver the CONN_DOWNs.
            ctx.destroy(linger=LINGER_MS)

    async def _wait_for_builder(self, push: zmq.Socket[Any]) -> None:
        """Give the PUSH socket a moment to connect before the first frame.

        With IMMEDIATE, a send before the connection to the builder is up is dropped, and
        the builder would see our first connection start with a hole. The probe is a
        heartbeat, a message the builder expects anyway. No builder: go on and drop.
        """
        probe = next(iter(self._encoders.values()))
        deadline = time.monotonic() + BUILDER_WAIT
        while True:
            try:
                push.send(probe.heartbeat(time.time_ns()), zmq.NOBLOCK)
                return
            except zmq.Again:
                if time.monotonic() >= deadline:
                    self._log.warning(
                        "builder_not_connected",
                        raw=self.settings.zmq.raw,
                        waited=BUILDER_WAIT,
                        detail="data frames are dropped until it is",
                    )
                    return
                await asyncio.sleep(0.005)

    def _build_connections(self, push: zmq.Socket[Any]) -> None:
        bybit = self.settings.bybit
        conn_ids = ConnIds(self._rng.getrandbits)
        limiter = ConnectionRateLimiter(bybit.max_new_connections_per_5min, CONNECTION_WINDOW)

        def connection(name: str, path: str, category: str, topics: list[str]) -> Connection:
            return Connection(
                name=name,
                url=f"{bybit.ws_url}/{path}",
                subscriptions=Subscriptions(category, topics),
                encoder=self._encoders[category],
                push=push,
                conn_ids=conn_ids,
                limiter=limiter,
                backoff=Backoff(bybit.backoff_initial, bybit.backoff_max, rng=self._rng.random),
                timing=self.timing,
                max_frame_bytes=self.settings.ingestor.max_frame_bytes,
                log=self._log,
                ratelog=self._ratelog,
            )

        for category, groups in self.groups.items():
            for index, topics in enumerate(groups):
                conn = connection(f"{category}#{index}", category, category, topics)
                self.connections.append(conn)
                for topic in topics:
                    self._owners.setdefault((category, topic), []).append(conn)
        if self.system_status:
            # Its frames go out under the first category's envelope: the builder routes
            # them by topic (system.status is exchange-wide).
            category = next(iter(self.groups))
            self.connections.append(
                connection("system-status", SYSTEM_STATUS_PATH, category, [SYSTEM_STATUS_TOPIC])
            )

    async def _heartbeat(self, push: zmq.Socket[Any]) -> None:
        """One HEARTBEAT per category per second: the builder's proof that we are alive."""
        encoders = list(self._encoders.values())
        while True:
            now_ns = time.time_ns()
            for encoder in encoders:
                with contextlib.suppress(zmq.Again):  # builder gone: nobody to tell
                    push.send(encoder.heartbeat(now_ns), zmq.NOBLOCK)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _read_control(self, sub: zmq.asyncio.Socket) -> None:
        counters = self.control
        while True:
            frames = await sub.recv_multipart()
            try:
                request = decode_resync(frames)
            except WireError as exc:
                counters.malformed_control += 1
                if counters.malformed_control == 1:  # then only counted in the stats line
                    self._log.warning("control_message_rejected", error=exc.reason)
                continue
            counters.resync_requests += 1
            if request.ingestor and request.ingestor != self.id:
                counters.resync_not_owned += 1  # the builder asked another source
                continue
            conn = self._resync_connection(request)
            if conn is None:
                counters.resync_not_owned += 1
                continue
            if is_full_topic(request.topic):
                # orderbook.full has no snapshot on the socket: the builder's resync asks
                # for the REST one (mdgw.ingestor.snapshots), whatever the escalation.
                self.snapshots.request(request.category, request.topic, conn.inject)
                self._log.info(
                    "rest_snapshot_requested", topic=request.topic, reason=request.reason
                )
                continue
            if request.reconnect:
                conn.reconnect(f"resync of {request.topic} requested reconnect: {request.reason}")
                continue
            decision = conn.request_resync(request.topic)
            fields = {
                "category": request.category,
                "topic": request.topic,
                "reason": request.reason,
                "connection": conn.name,
            }
            if decision is ResyncDecision.STARTED:
                self._log.info("resync_started", **fields)
            else:
                self._log.debug("resync_skipped", decision=decision.value, **fields)

    def _resync_connection(self, request: ResyncRequest) -> Connection | None:
        """The connection to resubscribe: the one the builder named, else the first one up."""
        conns = self._owners.get((request.category, request.topic))
        if not conns:
            return None
        if request.conn_id:
            for conn in conns:
                if conn.conn_id == request.conn_id:
                    return conn
        for conn in conns:
            if conn.up:
                return conn
        return conns[0]

    async def _report(self) -> None:
        interval = self.settings.log.stats_interval
        while True:
            await asyncio.sleep(interval)
            self._log_stats()
            self._ratelog.flush_suppressed()


async def serve(
    settings: Settings,
    shutdown: Shutdown,
    *,
    ingestor_id: str | None = None,
    selection: Selection = Selection(),
) -> None:
    """Run an ingestor until shutdown is requested (what ``python -m mdgw.ingestor`` runs)."""
    await Ingestor(settings, ingestor_id=ingestor_id, selection=selection).run(shutdown)

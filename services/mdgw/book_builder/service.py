"""book_builder's asyncio shell: moves bytes between sockets and the :class:`Hub`.

Sockets (all bound here; docs/architecture.md): raw PULL (from ingestors), pub PUB (to
consumers), control PUB (resync requests to ingestors), snapshot ROUTER (late joiners).

The hot path is a reader callback on the raw socket's file descriptor: it drains
everything that is waiting with non-blocking receives (up to ``_BATCH``), feeds the
hub, and sends what the hub queued. There is no ``await`` per message or per batch. The
receives and sends are :mod:`mdgw.runtime.zio`'s: one C call per batch when the compiled
build has it, else pyzmq's calls in a Python loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
import zmq
import zmq.asyncio

from mdgw import compiled
from mdgw.book_builder.feed_metrics import LagFigures
from mdgw.book_builder.journal import journal_or_exit
from mdgw.book_builder.metrics import BuilderMetrics
from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.core.hub import Hub
from mdgw.core.journal_format import InputKind
from mdgw.runtime import zio
from mdgw.runtime.curve import server_keys_or_exit, start_authenticator
from mdgw.runtime.lifecycle import Shutdown
from mdgw.runtime.logging import get_logger
from mdgw.runtime.metrics import MetricsEndpoint
from mdgw.runtime.ratelog import RateLimitedLog
from mdgw.runtime.settings import Settings
from mdgw.runtime.stats import percentiles
from mdgw.runtime.zmqsock import BUILDER_DRAIN_BATCH, make_socket

# Messages drained per call of _drain (then it yields to the event loop). zmq.hwm's floor
# is twice it (mdgw.runtime.zmqsock.HWM_FLOOR): a drained batch is flushed in one go.
_BATCH = BUILDER_DRAIN_BATCH
_TICK_S = 0.1
_SNAPSHOT_MAX_REQUEST = 4096  # bytes; larger requests make libzmq drop the peer
_RAW = int(InputKind.RAW)
_TICK = int(InputKind.TICK)
_PEER_DISCONNECTED = int(InputKind.PEER_DISCONNECTED)
_CONTROL_SUBSCRIBER = int(InputKind.CONTROL_SUBSCRIBER)
_PUBLISH_DUE = int(InputKind.PUBLISH_DUE)


def fused_symbols(settings: Settings) -> set[tuple[str, str]]:
    """(category, symbol) configured at depth 1 and at a deeper depth: their bbo is fused."""
    depths: dict[tuple[str, str], set[int | str]] = {}
    for stream in settings.bybit.streams:
        for symbol in stream.symbols:
            depths.setdefault((stream.category, symbol), set()).add(stream.depth)
    return {key for key, seen in depths.items() if 1 in seen and len(seen) > 1}


class BookBuilder:
    def __init__(
        self, settings: Settings, shutdown: Shutdown, metrics: MetricsEndpoint | None = None
    ) -> None:
        self.settings = settings
        self.shutdown = shutdown
        self.log: structlog.typing.FilteringBoundLogger = get_logger()
        self.events = RateLimitedLog(self.log, interval=10.0)
        books = settings.books
        hub_config: dict[str, Any] = {
            "publish_depth": books.publish_depth,
            "resync_timeout": books.resync_timeout,
            "resync_min_interval": books.resync_min_interval,
            "ingestor_timeout": books.ingestor_timeout,
            "stale_after": books.stale_after,
        }
        if books.max_rate:  # only when set: journals of builders before it stay as they were
            hub_config["max_rate"] = books.max_rate
        fused = fused_symbols(settings)
        if fused:  # a list (JSON), and only when any: replay builds the same hub from it
            hub_config["fused"] = sorted([category, symbol] for category, symbol in fused)
        self.hub = Hub(**hub_config, clock_ns=time.time_ns)
        self._due_timer: asyncio.TimerHandle | None = None  # conflation: next publish_due
        # Every call of a hub entry point is journaled right where it is made (the hub's
        # clock only stamps pub_ns, which a replay may change); None when journal is off.
        self.journal = journal_or_exit(settings.journal, hub_config)
        self._lag_seen: dict[str, tuple[int, int]] = {}  # per source: lag total, samples
        # Per source: (mean, largest) lag in s over the last stats interval, for /metrics.
        self.source_lags: dict[str, LagFigures] = {}
        self.snapshots_served = 0
        self.snapshots_rejected = 0
        self.pub_dropped = 0
        self.internal_errors = 0  # messages on which the hub raised (a bug: logged)
        # /metrics and /health, served from their own thread (None: metrics.book_builder = 0)
        self.metrics = None if metrics is None else BuilderMetrics(self, metrics)
        z = settings.zmq
        # CURVE server keys (None unless zmq.curve is on); exit 78 if they are missing.
        curve = server_keys_or_exit(settings)
        self.ctx = zmq.asyncio.Context()
        # The ZAP handler must run before the first CURVE socket binds.
        self.auth = None if curve is None else start_authenticator(self.ctx, curve)
        sync_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(self.ctx)
        self.raw = make_socket(
            self.ctx,
            zmq.PULL,
            z.raw,
            bind=True,
            hwm=z.hwm,
            socket_class=zmq.asyncio.Socket,
            curve=curve,
        )
        # Plain sockets on the same context for the hot path: non-blocking calls need no loop.
        self.raw_sync: zmq.Socket[bytes] = zmq.Socket.shadow(self.raw.underlying)
        # The hot path's receives from raw_sync and sends to pub: in C when it can
        # (mdgw.runtime.zio, decided at import; the startup line says which).
        self.io: zio.IO = zio.IN_USE
        self.pub = make_socket(sync_ctx, zmq.PUB, z.pub, bind=True, hwm=z.hwm, curve=curve)
        # XPUB, not PUB: the builder sees each ingestor join (XPUB_VERBOSE reports every
        # subscribe, not only the first), and repeats pending resync requests to it.
        self.control_joins = make_socket(
            self.ctx,
            zmq.XPUB,
            z.control,
            bind=True,
            hwm=10_000,
            socket_class=zmq.asyncio.Socket,
            curve=curve,
        )
        self.control_joins.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.control: zmq.Socket[bytes] = zmq.Socket.shadow(self.control_joins.underlying)
        self.snapshot = make_socket(
            self.ctx,
            zmq.ROUTER,
            z.snapshot,
            bind=True,
            hwm=1000,
            socket_class=zmq.asyncio.Socket,
            curve=curve,
            max_msg_size=_SNAPSHOT_MAX_REQUEST,  # before bind, or libzmq ignores it
        )
        self.snapshot.setsockopt(zmq.ROUTER_MANDATORY, 0)

    async def run(self) -> None:
        z = self.settings.zmq
        self.log.info(
            "book_builder_started",
            raw=z.raw,
            pub=z.pub,
            control=z.control,
            snapshot=z.snapshot,
            publish_depth=self.settings.books.publish_depth,
            max_rate=self.settings.books.max_rate,
            hot_path=compiled.ACTIVE,
            zmq_io=self.io.name,
        )
        if self.journal is not None:
            self.journal.start()
            self.log.info(
                "journal_started",
                dir=str(self.journal.dir),
                segment=str(self.journal.current),
                session=self.journal.session,
            )
        if self.metrics is not None:
            self.metrics.start(asyncio.get_running_loop())
            endpoint = self.metrics.endpoint
            self.log.info("metrics_listening", url=endpoint.url, port=endpoint.port)
        tasks = [
            asyncio.create_task(self._pump(), name="pump"),
            asyncio.create_task(self._serve_snapshots(), name="snapshots"),
            asyncio.create_task(self._report(), name="stats"),
            asyncio.create_task(self._watch_peers(), name="peers"),
            asyncio.create_task(self._watch_control_joins(), name="control-joins"),
        ]
        try:
            await self.shutdown.wait()
        finally:
            if self.metrics is not None:
                self.metrics.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._flush()
            if self.journal is not None:
                self.journal.close()
                self._check_journal()
            self._log_stats(final=True)
            for sock in (self.raw, self.pub, self.control_joins, self.snapshot):
                sock.close(linger=200)
            if self.auth is not None:
                self.auth.stop()  # its sockets would keep ctx.term() waiting
            self.ctx.term()
            self.log.info("book_builder_stopped")

    # ------------------------------------------------------------------ pump

    async def _pump(self) -> None:
        """Feed the hub from a reader callback on the raw socket's file descriptor.

        ZeroMQ's FD is edge-triggered: it says the socket's events may have changed and does
        not fire again until they are read. So :meth:`_drain` receives until ``zmq.Again``
        (which re-arms it), or, stopped by the batch limit, runs again via ``call_soon`` after
        the other callbacks (snapshot service, monitors) had their turn. A plain callback
        rather than ``await sock.poll()`` per batch: no Future, timer or epoll_ctl per
        wake-up. This task only runs the hub's clock.
        """
        loop = asyncio.get_running_loop()
        fd = self.raw_sync.FD
        loop.add_reader(fd, self._drain)
        loop.call_soon(self._drain)  # what arrived before the reader was added
        try:
            journal = self.journal
            while True:
                await asyncio.sleep(_TICK_S)
                now = time.monotonic()
                self.hub.tick(now)
                self._flush()
                if journal is not None:
                    journal.add(_TICK, now)
                    journal.hand_over()
                    self._check_journal()
                if self.metrics is not None:
                    self.metrics.fold_latencies()  # a batch per tick, not a call per book
        finally:
            loop.remove_reader(fd)

    def _drain(self) -> None:
        """Everything waiting on the raw socket (up to ``_BATCH``) into the hub, then send."""
        now = time.monotonic()
        batch, drained = self.io.recv_batch(self.raw_sync, _BATCH)
        on_raw = self.hub.on_raw
        for msg in batch:
            try:
                on_raw(msg, now)
            except Exception as exc:  # a hub bug must cost one message, not the service
                self._on_internal_error(exc, msg)
        if not drained:  # more may be waiting, and the edge-triggered FD will not say so again
            asyncio.get_running_loop().call_soon(self._drain)
        if batch and self.journal is not None:
            self.journal.add(_RAW, now, batch)
        if self.hub.next_due is not None:
            self._publish_due()
        self._flush()

    def _publish_due(self) -> None:
        """Conflation (books.max_rate): publish the books whose interval has passed, and
        wake up again when the next one is due (asyncio's clock is time.monotonic too)."""
        hub = self.hub
        now = time.monotonic()
        hub.publish_due(now)
        if self.journal is not None:
            self.journal.add(_PUBLISH_DUE, now)
        due = hub.next_due
        timer = self._due_timer
        if timer is not None and (due is None or timer.when() > due):
            timer.cancel()
            timer = self._due_timer = None
        if due is not None and timer is None:
            self._due_timer = asyncio.get_running_loop().call_at(due, self._on_due)

    def _on_due(self) -> None:
        self._due_timer = None
        self._publish_due()
        self._flush()

    def _on_internal_error(self, exc: Exception, msg: bytes) -> None:
        self.internal_errors += 1
        self.events.emit(
            "internal_error",
            {"error": repr(exc)[:200], "size": len(msg), "head": msg[24:120].hex()},
        )

    def _flush(self) -> None:
        hub = self.hub
        if hub.outbox:
            # A PUB drops at its HWM by itself; counting zmq.Again is the belt to it.
            self.pub_dropped += self.io.send_pairs(self.pub, hub.outbox)
            hub.outbox.clear()
        if hub.control:
            for frames in hub.control:
                try:
                    self.control.send_multipart(frames, zmq.NOBLOCK)
                except zmq.Again:
                    self.pub_dropped += 1
            hub.control.clear()
        if hub.events:
            for event, fields in hub.events:
                self.events.emit(event, fields)
            hub.events.clear()

    async def _watch_peers(self) -> None:
        """Tell the hub at once when an ingestor's raw connection goes away (kill -9)."""
        monitor = self.raw.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        try:
            while True:
                await monitor.recv_multipart()
                now = time.monotonic()
                self.hub.on_peer_disconnected(now)
                if self.journal is not None:
                    self.journal.add(_PEER_DISCONNECTED, now)
        finally:
            self.raw.disable_monitor()
            monitor.close(linger=0)

    async def _watch_control_joins(self) -> None:
        """An ingestor subscribed to control: resend the resync requests it may have missed."""
        while True:
            event = await self.control_joins.recv()
            if event[:1] == b"\x01":  # subscribe (b"\x00" is unsubscribe)
                now = time.monotonic()
                self.hub.on_control_subscriber(now)
                if self.journal is not None:
                    self.journal.add(_CONTROL_SUBSCRIBER, now)
                self._flush()

    def _check_journal(self) -> None:
        """Log the journal's failure once, and each new hole (rate-limited)."""
        journal = self.journal
        assert journal is not None
        if journal.error is not None and not journal.error_reported:
            journal.error_reported = True
            self.log.error("journal_failed", reason=journal.error, **journal.stats.as_dict())
        hole = journal.last_hole
        if hole is not None:
            journal.last_hole = None
            self.events.emit(
                "journal_hole",
                {"reason": "the journal's writer is behind the feed", "holes": journal.stats.holes},
            )

    # ------------------------------------------------------------- snapshots

    async def _serve_snapshots(self) -> None:
        sock = self.snapshot
        while True:
            frames = await sock.recv_multipart()
            try:
                envelope, request = wire.split_snapshot_request(frames)
                prefix = wire.decode_snapshot_request(request)
            except WireError as exc:
                self.snapshots_rejected += 1
                self.events.emit("snapshot_request_rejected", {"reason": exc.reason})
                if len(frames) >= 2:  # answer, so a REQ client is not left hanging
                    await sock.send_multipart(
                        [*frames[:-1], *wire.encode_snapshot_error(exc.reason)]
                    )
                continue
            # The hub's state only changes in _drain and _pump, which flush everything they
            # published before yielding: each item's seq is the topic's last published seq.
            reply = envelope + wire.encode_snapshot_reply(self.hub.snapshot(prefix), prefix)
            await sock.send_multipart(reply)
            self.snapshots_served += 1

    # ----------------------------------------------------------------- stats

    async def _report(self) -> None:
        interval = self.settings.log.stats_interval
        self._last = (time.monotonic(), self.hub.stats.as_dict())
        while True:
            await asyncio.sleep(interval)
            self._log_stats()

    def _source_fields(self) -> dict[str, dict[str, Any]]:
        """Per source (``ingestor/slot``): how often it was first, and its lag behind the first.

        ``lag_ms`` is the mean lag of its late copies since the previous stats line,
        ``lag_ms_max`` their largest; the counters are totals since start. Lags between
        hosts include the difference of their clocks (receive times are wall clock).
        The stats line owns that window (it resets the hub's running maximum): /metrics
        shows the same two figures (:attr:`source_lags`) until the next stats line.
        """
        out: dict[str, dict[str, Any]] = {}
        live = self.hub.live_sources()
        last = self._lag_seen
        for name, src in self.hub.source_stats().items():
            total, samples = last.get(name, (0, 0))
            new_samples = src.lag_samples - samples
            mean = (src.lag_ns_total - total) / new_samples / 1e6 if new_samples else None
            last[name] = (src.lag_ns_total, src.lag_samples)
            out[name] = {
                "connections": live.get(name, 0),
                "first": src.first,
                "late": src.late,
                "lag_ms": None if mean is None else round(mean, 3),
                "lag_ms_max": round(src.lag_ns_max / 1e6, 3) if new_samples else None,
                "gaps": src.gaps,
                "seq_holes": src.seq_holes,
                "older_snapshots": src.older_snapshots,
                "failovers": src.failovers,
            }
        self.hub.reset_lag_max()
        self.source_lags = {
            name: (
                None if f["lag_ms"] is None else f["lag_ms"] / 1e3,
                None if f["lag_ms_max"] is None else f["lag_ms_max"] / 1e3,
            )
            for name, f in out.items()
        }
        return out

    def _log_stats(self, final: bool = False) -> None:
        now = time.monotonic()
        stats = self.hub.stats.as_dict()
        then, before = getattr(self, "_last", (now, stats))
        elapsed = max(now - then, 1e-9)
        lat = self.hub.latencies
        p50, p99 = percentiles(lat, (50, 99))
        if self.metrics is not None:
            self.metrics.fold_latencies()
        lat.clear()
        if self.metrics is not None:
            self.metrics.latencies_cleared()
        fields: dict[str, Any] = {
            "frames_in": stats["frames"],
            "frames_per_s": round((stats["frames"] - before["frames"]) / elapsed, 1),
            "books_out": stats["books_out"],
            "books_per_s": round((stats["books_out"] - before["books_out"]) / elapsed, 1),
            "latency_p50_us": None if p50 is None else round(p50 / 1000, 1),
            "latency_p99_us": None if p99 is None else round(p99 / 1000, 1),
            "pub_dropped": self.pub_dropped,
            "internal_errors": self.internal_errors,
            "snapshots_served": self.snapshots_served,
            "snapshots_rejected": self.snapshots_rejected,
            "books": self.hub.states(),
            # Bybit's system.status notices under way now: the hook for health and metrics.
            "maintenance": [
                n.id for n in self.hub.notices.maintenance(time.time_ns() // 1_000_000)
            ],
            "journal": None if self.journal is None else self.journal.stats.as_dict(),
            **{k: v for k, v in stats.items() if k not in ("frames", "books_out")},
            "sources": self._source_fields(),
        }
        self.events.flush_suppressed()
        self.log.info("stats_final" if final else "stats", **fields)
        self._last = (now, stats)

"""The simulator's I/O shell: websockets server, send loop, fault switches.

One port serves everything (``websockets.asyncio.server.serve`` with ``process_request``):
the Bybit v5 public streams at ``ws://host:port/v5/public/{spot|linear|inverse}``, and the
HTTP routes of :mod:`.routes` (Bybit's REST order book, ``/sim/fault``, ``/sim/status``,
``/sim/truth``).

Send loop: one timer tick every ``tick_interval`` (20 ms) runs every symbol step that is
due (symbols are spread evenly over the step period), hands each frame to the subscribers
of its topic, and then writes each touched connection's frames with one system call
(:mod:`.fanout`). There is no per-message ``await``.

Faults: :meth:`SimulatorServer.apply_fault` carries out a :class:`~.faults.FaultRequest`
(``sim.apply_fault(FaultRequest(FaultKind.SKIP, category="linear", topic=...))`` from tests),
also reachable over HTTP for ``python -m mdgw.simulator fault …``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from mdgw.runtime.logging import get_logger
from mdgw.simulator.connection import Client
from mdgw.simulator.fanout import Fanout
from mdgw.simulator.faults import (
    FRAME_FAULTS,
    FaultError,
    FaultKind,
    FaultRequest,
)
from mdgw.simulator.market import Frame, Market, parse_served_topic
from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.protocol import Reply, Session, Subscribed
from mdgw.simulator.routes import WS_PREFIX, HttpRoutes
from mdgw.simulator.rpi import is_rpi_topic
from mdgw.simulator.system_status import STATUS_PATH, STATUS_TOPIC, NoticeBoard, status_frame

__all__ = ["SimulatorServer"]


log = get_logger()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _require_book_topic(topic: str, fault: str) -> None:
    parsed = parse_served_topic(topic)
    if not is_rpi_topic(topic) and (parsed is None or parsed.depth == 0):
        raise FaultError(f"{fault} needs an orderbook topic")


class SimulatorServer:
    """A Bybit v5 public-stream look-alike on one port; an async context manager.

    ``async with SimulatorServer(params) as sim:`` starts it (``params.port = 0`` picks a
    free port: read ``sim.port``), ``sim.market`` is the shared :class:`Market` (truth), and
    the fault methods below act on the running connections.
    """

    def __init__(self, params: SimulatorParams) -> None:
        self.params = params
        self.market = Market(params.market())
        self._symbols = self.market.symbols()
        self._clients: dict[str, Client] = {}
        # Subscribers and what is on its way to them; fanout.now is the current loop time.
        self.fanout = Fanout(self.market.crossing_bid, params.max_write_buffer)
        self._refuse_until = 0.0
        self.notices = NoticeBoard()  # system.status, on /v5/public/misc/status
        # Armed failures of GET /v5/market/full_orderbook: ("5xx" | "timeout", seconds).
        self.rest_faults: list[tuple[str, float]] = []
        self.rest_requests = 0  # full_orderbook requests answered (or failed)
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._conn_count = 0
        self._ids = random.Random(f"{params.seed}/conn_id")
        # Counters since the start; stats lines log their increase.
        self._steps = 0
        self._lagged_steps = 0
        self._logged = (0, 0, 0)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.params.host,
            self.params.port,
            process_request=HttpRoutes(self).process_request,
            compression=None,  # Bybit's v5 servers are used without permessage-deflate
            ping_interval=None,  # clients keep the connection alive with {"op":"ping"}
            max_size=2**20,
            server_header="mdgw-simulator",
        )
        self._ticker = asyncio.create_task(self._run(), name="simulator-ticks")
        log.info(
            "simulator_started",
            host=self.params.host,
            port=self.port,
            symbols=len(self._symbols),
            seed=self.params.seed,
            rate=self.params.rate,
        )

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            log.info("simulator_stopped")

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def ws_url(self, category: str) -> str:
        return f"ws://{self.params.host}:{self.port}{WS_PREFIX}{category}"

    @property
    def http_url(self) -> str:
        return f"http://{self.params.host}:{self.port}"

    def conn_ids(self, category: str | None = None) -> list[str]:
        """The conn_id of every open connection (of one category)."""
        return [c.conn_id for c in self._clients.values() if category in (None, c.category)]

    # --- connections ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        category = urlsplit(ws.request.path).path[len(WS_PREFIX) :]
        self._conn_count += 1
        conn_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        order = random.Random(f"{self.params.seed}/order/{self._conn_count}")
        chance = self.params.snapshot_first
        if category == STATUS_PATH:

            def exists(topic: str) -> bool:
                return topic == STATUS_TOPIC
        else:

            def exists(topic: str) -> bool:
                return self.market.topic_exists(category, topic)

        session = Session(
            category, conn_id, exists, lambda: order.random() < chance, clock_ms=_wall_ms
        )
        client = Client(ws, category, session)
        self._clients[conn_id] = client
        log.info("connection_opened", conn_id=conn_id, category=category)
        try:
            async for message in ws:
                self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._forget(client)
            log.info(
                "connection_closed",
                conn_id=conn_id,
                category=category,
                frames=client.frames,
                topics=len(session.topics),
                code=ws.close_code,
            )

    def _on_message(self, client: Client, message: str | bytes) -> None:
        outcome = client.session.receive(message)
        self.fanout.now = asyncio.get_running_loop().time()
        if isinstance(outcome, Reply):
            if outcome.kind == "pong" and client.muted_until > self.fanout.now:
                return
            self.fanout.send_now(client, outcome.payload)
        elif isinstance(outcome, Subscribed):
            self._subscribe(client, outcome)
        else:
            for topic in outcome.topics:
                self._unsubscribe(client, topic)
            self.fanout.send_now(client, outcome.ack.payload)

    def _subscribe(self, client: Client, outcome: Subscribed) -> None:
        now_ms = _wall_ms()
        snapshots: list[Frame] = []
        notices: bytes | None = None
        for topic in outcome.topics:
            key = (client.category, topic)
            if topic == STATUS_TOPIC:
                self.fanout.subs.setdefault(key, set()).add(client)
                if self.notices.all():
                    notices = status_frame(self.notices.all(), now_ms)
                continue
            flushed, snapshot = self.market.subscribe(client.category, topic, now_ms)
            for frame in flushed:
                self.fanout.dispatch(frame)
            self.fanout.subs.setdefault(key, set()).add(client)
            if snapshot is not None:
                snapshots.append(snapshot)
        if not outcome.snapshot_first:
            self.fanout.send_now(client, outcome.ack.payload)
        for snapshot in snapshots:
            self.fanout.deliver(client, snapshot)
        if outcome.snapshot_first:
            self.fanout.send_now(client, outcome.ack.payload)
        if notices is not None:
            self.fanout.send_now(client, notices)
        self.fanout.flush()

    def _unsubscribe(self, client: Client, topic: str) -> None:
        key = (client.category, topic)
        subscribers = self.fanout.subs.get(key)
        if subscribers is None:
            return
        subscribers.discard(client)
        if not subscribers:
            del self.fanout.subs[key]
            if topic != STATUS_TOPIC:
                self.market.unlisten(client.category, topic)

    def _forget(self, client: Client) -> None:
        for topic in client.session.topics:
            self._unsubscribe(client, topic)
        self._clients.pop(client.conn_id, None)
        self.fanout.forget(client)

    # --- the send loop ----------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        params = self.params
        period = 1.0 / params.rate
        symbols = self._symbols
        count = max(1, len(symbols))
        start = loop.time()
        due = [start + period * index / count for index in range(len(symbols))]
        next_tick = start
        next_stats = start + params.stats_interval
        last_stats = start
        while True:
            next_tick += params.tick_interval
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now = self.fanout.now = loop.time()
            if now - next_tick > params.tick_interval:
                next_tick = now  # we were late: do not try to catch up ticks
            now_ms = _wall_ms()
            step = self.market.step
            dispatch = self.fanout.dispatch
            for index, (category, symbol) in enumerate(symbols):
                when = due[index]
                if when > now:
                    continue
                if now - when > 1.0:
                    # Overloaded: drop the backlog rather than spiral (counted as lag).
                    skipped = int((now - when) / period)
                    self._lagged_steps += skipped
                    when += skipped * period
                while when <= now:
                    step_ms = now_ms - int((now - when) * 1000)
                    for frame in step(category, symbol, step_ms):
                        dispatch(frame)
                    self._steps += 1
                    when += period
                due[index] = when
            for frame in self.market.resends(now_ms):
                dispatch(frame)
            if self.fanout.delayed:
                self.fanout.send_delayed()
            self.fanout.flush()
            if now >= next_stats:
                self._log_stats(now - last_stats)
                last_stats = now
                next_stats = now + params.stats_interval

    def _totals(self) -> dict[str, int]:
        return {
            "steps": self._steps,
            "frames_out": self.fanout.frames_out,
            "lagged_steps": self._lagged_steps,
        }

    def _log_stats(self, elapsed: float) -> None:
        steps, frames, lagged = self._steps, self.fanout.frames_out, self._lagged_steps
        last_steps, last_frames, last_lagged = self._logged
        self._logged = (steps, frames, lagged)
        log.info(
            "stats",
            connections=len(self._clients),
            topics=len(self.fanout.subs),
            steps=steps - last_steps,
            steps_per_s=round((steps - last_steps) / elapsed, 1),
            frames_out=frames - last_frames,
            frames_per_s=round((frames - last_frames) / elapsed, 1),
            lagged_steps=lagged - last_lagged,
        )

    # --- faults -----------------------------------------------------------------------

    def apply_fault(self, request: FaultRequest) -> int:
        """Carry out a fault request; returns how many connections (or topics) it hit."""
        kind = request.kind
        self.fanout.now = asyncio.get_running_loop().time()
        if kind is FaultKind.REFUSE:
            self._refuse_until = self.fanout.now + request.seconds
            hit = 1
        elif kind is FaultKind.CLEAR:
            hit = self._clear()
        elif kind is FaultKind.RESTART:
            hit = self._restart(request)
        else:
            clients = self._select(request)
            if kind is FaultKind.DROP:
                for client in clients:
                    client.ws.transport.abort()
            elif kind in FRAME_FAULTS:
                if kind is FaultKind.CROSSED and request.topic is not None:
                    _require_book_topic(request.topic, "crossed")
                for client in clients:
                    client.faults.append(request)
                    self.fanout.faulted.add(client)
            elif kind is FaultKind.SILENCE:
                for client in clients:
                    self._silence(client, request.seconds)
            elif kind is FaultKind.MUTE_PONGS:
                for client in clients:
                    client.muted_until = self.fanout.now + request.seconds
            elif kind is FaultKind.DELAY:
                for client in clients:
                    client.delay = request.seconds
                    self.fanout.delayed.add(client)
            hit = len(clients)
        log.info(
            "fault_applied",
            kind=kind.value,
            hit=hit,
            category=request.category,
            conn_id=request.conn_id,
            topic=request.topic,
            seconds=request.seconds or None,
        )
        return hit

    def _select(self, request: FaultRequest) -> list[Client]:
        return [
            client
            for client in self._clients.values()
            if request.category in (None, client.category)
            and request.conn_id in (None, client.conn_id)
            and (request.topic is None or request.topic in client.session.topics)
        ]

    def _restart(self, request: FaultRequest) -> int:
        assert request.category is not None and request.topic is not None
        _require_book_topic(request.topic, "restart")
        if not self.market.topic_exists(request.category, request.topic):
            raise FaultError(f"{request.category} does not serve {request.topic}")
        frame = self.market.restart(request.category, request.topic, _wall_ms())
        self.fanout.dispatch(frame)
        self.fanout.flush()
        return len(self.fanout.subs.get((request.category, request.topic), ()))

    def _silence(self, client: Client, seconds: float) -> None:
        client.silence(self.fanout.now + seconds)
        self.fanout.silent.add(client)
        asyncio.get_running_loop().call_later(seconds, self._end_silence, client)

    def _end_silence(self, client: Client) -> None:
        loop_now = asyncio.get_running_loop().time()
        if client.silent_until > loop_now + 0.001:
            return  # silenced again meanwhile: a later call ends it
        client.end_silence()
        self.fanout.silent.discard(client)

    def _clear(self) -> int:
        hit = len(self.fanout.faulted) + len(self.fanout.silent)
        for client in self._clients.values():
            client.clear_faults()
        self.fanout.faulted.clear()
        self.fanout.silent.clear()
        self._refuse_until = 0.0
        return hit

    # --- state for the HTTP routes (:mod:`.routes`) ----------------------------------------

    def refusing(self) -> bool:
        """Whether new websocket upgrades are refused now (the ``refuse`` fault)."""
        return asyncio.get_running_loop().time() < self._refuse_until

    def fail_rest(self, kind: str, count: int = 1, *, seconds: float = 10.0) -> None:
        """Fail the next *count* ``full_orderbook`` requests: ``"5xx"`` answers HTTP 503,
        ``"timeout"`` answers only after *seconds* (past the client's timeout)."""
        if kind not in ("5xx", "timeout") or count < 1:
            raise FaultError("fail_rest needs kind 5xx or timeout and a count >= 1")
        self.rest_faults += [(kind, seconds)] * count

    def post_notice(
        self,
        *,
        notice_id: str,
        state: str,
        begin_ms: int,
        end_ms: int,
        title: str = "",
    ) -> int:
        """Post a system.status notice: sent now to every subscriber; returns how many."""
        notice = self.notices.post(
            notice_id=notice_id, state=state, begin_ms=begin_ms, end_ms=end_ms, title=title
        )
        payload = status_frame([notice], _wall_ms())
        subscribers = self.fanout.subs.get((STATUS_PATH, STATUS_TOPIC), set())
        for client in subscribers:
            self.fanout.send_now(client, payload)
        log.info("notice_posted", id=notice_id, state=state, subscribers=len(subscribers))
        return len(subscribers)

    def send_frames(self, frames: list[Frame]) -> None:
        """Send market frames made outside the ticker (a REST request's flush) now."""
        for frame in frames:
            self.fanout.dispatch(frame)
        self.fanout.flush()

    def status(self) -> dict[str, Any]:
        """Counters, port, seed, symbols and every connection with its topics and faults."""
        body: dict[str, Any] = {
            "stats": self._totals(),
            "port": self.port,
            "seed": self.params.seed,
            "symbols": [f"{category}/{symbol}" for category, symbol in self._symbols],
            "connections": [client.describe() for client in self._clients.values()],
        }
        return body

"""The ingestor against a small in-test Bybit server, with real ZeroMQ sockets on ipc.

Each test runs the real :class:`mdgw.ingestor.service.Ingestor` in-process (one runs the
real ``python -m mdgw.ingestor`` for SIGTERM) and looks at both sides: what reached the
fake Bybit server on the wire, and what reached the PULL socket the book builder would bind.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq
import zmq.asyncio
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from mdgw.core.connection_plan import Selection, owns_system_status, plan_streams
from mdgw.core.subscriptions import TopicState
from mdgw.core.wire import Envelope, EnvelopeKind, decode_envelope, encode_resync
from mdgw.ingestor.__main__ import EX_USAGE, parse_args
from mdgw.ingestor.service import Ingestor
from mdgw.runtime.lifecycle import Shutdown
from mdgw.runtime.settings import Settings, StreamConfig, load_settings
from mdgw.runtime.zmqsock import make_socket
from mdgw.simulator.faults import FaultKind, FaultRequest

REPO = Path(__file__).parents[2]
BOOK = "orderbook.50.BTCUSDT"
TRADE = "publicTrade.BTCUSDT"


# ----------------------------------------------------------------- fake Bybit


def book_frame(i: int, topic: str = BOOK) -> bytes:
    # Odd spacing on purpose: a re-serialized frame would not compare equal.
    symbol = topic.rsplit(".", 1)[1]
    return (
        f'{{"topic":"{topic}", "type":"delta","ts":{1700000000000 + i},'
        f'"data":{{"s":"{symbol}","b":[["65000.{i % 10}0","0.5"]],"a":[],"u":{i},"seq":{i}}},'
        f'"cts":{1700000000000 + i}  }}'
    ).encode()


@dataclass
class FakeBybit:
    """Speaks just enough Bybit v5: acks, pongs, refusals, data on demand, faults."""

    answer_pings: bool = True
    refuse: set[str] = field(default_factory=set)
    status: int | None = None  # answer the upgrade with this HTTP status instead
    frames_on_subscribe: int = 0  # data frames sent after each subscribe ack
    close_at_once: bool = False  # accept the websocket, then close it
    attempts: list[float] = field(default_factory=list)  # handshake times (monotonic)
    received: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (conn #, msg)
    paths: list[str] = field(default_factory=list)
    live: list[ServerConnection] = field(default_factory=list)
    server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v5/public"

    def ops(self, op: str) -> list[tuple[int, dict[str, Any]]]:
        return [(n, m) for n, m in self.received if m.get("op") == op]

    def topic_ops(self, topic: str) -> list[str]:
        return [str(m["op"]) for _, m in self.received if topic in m.get("args", [])]

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.attempts.append(time.monotonic())
        if self.status is not None:
            return connection.respond(HTTPStatus(self.status), "go away\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        number = len(self.paths)
        self.paths.append(ws.request.path if ws.request else "")
        self.live.append(ws)
        if self.close_at_once:
            self.live.remove(ws)
            await ws.close()
            return
        try:
            async for message in ws:
                msg = orjson.loads(message)
                self.received.append((number, msg))
                await self.answer(ws, msg)
        except ConnectionClosed:
            pass
        finally:
            self.live.remove(ws)

    async def answer(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        op, req_id = msg.get("op"), msg.get("req_id", "")
        base = {"conn_id": "fake", "req_id": req_id, "op": op}
        if op == "ping":
            if self.answer_pings:
                await ws.send(orjson.dumps({"success": True, "ret_msg": "pong", **base}).decode())
            return
        args = msg.get("args", [])
        bad = [t for t in args if t in self.refuse]
        if op == "subscribe" and bad:
            error = {"success": False, "ret_msg": f"error:handler not found,topic:{bad[0]}"}
            await ws.send(orjson.dumps({**error, **base}).decode())
            return
        await ws.send(orjson.dumps({"success": True, "ret_msg": "", **base}).decode())
        if op == "subscribe":
            for i in range(1, self.frames_on_subscribe + 1):
                for topic in args:
                    await ws.send(book_frame(i, topic).decode())

    async def send_all(self, frames: Iterable[bytes]) -> None:
        for ws in list(self.live):
            for frame in frames:
                await ws.send(frame.decode())


@pytest.fixture
async def bybit() -> AsyncIterator[FakeBybit]:
    fake = FakeBybit()
    async with serve(
        fake.handler, "127.0.0.1", 0, process_request=fake.process_request, ping_interval=None
    ) as server:
        fake.server = server
        yield fake


# ------------------------------------------------------------------ the builder side


@dataclass
class Builder:
    """The book builder's sockets: PULL on raw, PUB on control."""

    pull: zmq.asyncio.Socket
    pub: zmq.asyncio.Socket
    envelopes: list[Envelope] = field(default_factory=list)

    async def collect(self, timeout: float = 0.05) -> list[Envelope]:
        """Wait up to ``timeout`` for a message, then take what is queued (never more)."""
        wait_ms = timeout * 1000
        while await self.pull.poll(wait_ms):
            self.envelopes.append(decode_envelope(await self.pull.recv()))
            wait_ms = 0
        return self.envelopes

    def kinds(self, *kinds: EnvelopeKind) -> list[Envelope]:
        return [e for e in self.envelopes if e.kind in kinds]


@pytest.fixture
async def zctx() -> AsyncIterator[zmq.asyncio.Context]:
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


def endpoints(tmp_path: Path) -> tuple[str, str]:
    return f"ipc://{tmp_path}/raw.sock", f"ipc://{tmp_path}/control.sock"


@pytest.fixture
def builder(zctx: zmq.asyncio.Context, tmp_path: Path) -> Builder:
    raw, control = endpoints(tmp_path)
    pull = make_socket(zctx, zmq.PULL, raw, bind=True, hwm=10_000, linger_ms=0)
    pub = make_socket(zctx, zmq.PUB, control, bind=True, hwm=1000, linger_ms=0)
    return Builder(pull, pub)


def write_config(tmp_path: Path, url: str, **bybit: Any) -> Path:
    raw, control = endpoints(tmp_path)
    knobs = {
        "ping_interval": 0.5,
        "silence_timeout": 3.0,
        "connect_timeout": 2.0,
        "backoff_initial": 0.1,
        "backoff_max": 0.4,
        # The system.status connection has its own test (test_system_status_connection...).
        "system_status": False,
        **bybit,
    }
    symbols = knobs.pop("symbols", ["BTCUSDT"])
    max_frame = knobs.pop("max_frame_bytes", 65536)
    lines = [
        "[bybit]",
        f'ws_url = "{url}"',
        *(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in knobs.items()),
        "[[bybit.streams]]",
        'category = "linear"',
        f"symbols = {orjson.dumps(symbols).decode()}",
        "depth = 50",
        "trades = true",
        "[zmq]",
        f'raw = "{raw}"',
        f'control = "{control}"',
        "[ingestor]",
        'id = "ing-test"',
        f"max_frame_bytes = {max_frame}",
        "[log]",
        'level = "info"',
        "stats_interval = 0.5",
        "[metrics]",
        "ingestor = 0",  # no fixed port: tests run side by side
    ]
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def settings_for(tmp_path: Path, url: str, **bybit: Any) -> Settings:
    return load_settings(write_config(tmp_path, url, **bybit), env={})


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


@dataclass
class Running:
    ingestor: Ingestor
    shutdown: Shutdown
    task: asyncio.Task[None]

    async def stop(self, timeout: float = 3.0) -> None:
        self.shutdown.request("test")
        await asyncio.wait_for(self.task, timeout)


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Running]]:
    running: list[Running] = []

    def _start(settings: Settings, **kwargs: Any) -> Running:
        ingestor = Ingestor(settings, rng=random.Random(7), **kwargs)
        shutdown = Shutdown()
        task = asyncio.create_task(ingestor.run(shutdown))
        running.append(Running(ingestor, shutdown, task))
        return running[-1]

    yield _start
    for r in running:
        if not r.task.done():
            await r.stop()


# ----------------------------------------------------------------------- tests


async def test_forwards_every_data_frame_once_unchanged_with_envelopes(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    run = start(settings_for(tmp_path, bybit.url))
    await until(lambda: len(bybit.ops("subscribe")) == 1)
    _, sub = bybit.ops("subscribe")[0]
    assert sub["args"] == [BOOK, TRADE]
    assert bybit.paths == ["/v5/public/linear"]
    frames = [book_frame(i) for i in range(1, 201)]
    await bybit.send_all([b"not json", *frames[:100], b'{"foo":1}', *frames[100:]])
    await until(lambda: any(m.get("op") == "ping" for _, m in bybit.received))  # a ping is sent
    await until(lambda: run.ingestor.totals().pongs >= 1)

    async def got_all() -> bool:
        await builder.collect()
        return len(builder.kinds(EnvelopeKind.DATA)) >= len(frames)

    await until(got_all)
    await until(lambda: _has(builder, EnvelopeKind.HEARTBEAT))
    await builder.collect(0.3)
    data = builder.kinds(EnvelopeKind.DATA)
    assert [e.frame for e in data] == frames  # once each, in order, bytes unchanged
    assert [e.seq for e in data] == list(range(1, len(frames) + 1))
    assert {(e.ingestor, e.category) for e in data} == {("ing-test", "linear")}
    up = builder.kinds(EnvelopeKind.CONN_UP)
    assert len(up) == 1 and up[0].seq == 0 and {e.conn_id for e in data} == {up[0].conn_id}
    assert all(e.recv_ns > 0 for e in data) and data[0].recv_ns <= data[-1].recv_ns
    beats = builder.kinds(EnvelopeKind.HEARTBEAT)
    assert beats and all(b.conn_id == 0 and b.seq == 0 for b in beats)
    totals = run.ingestor.totals()
    assert totals.acks == 1 and totals.forwarded == len(frames) and totals.dropped == 0
    assert totals.unknown == 2  # counted, not forwarded
    # Acks, pongs and unknown frames are handled locally, never forwarded.
    assert all(e.frame.startswith(b'{"topic":') for e in data)
    assert run.ingestor.connections[0].subscriptions.state(BOOK) is TopicState.SUBSCRIBED

    await run.stop()
    await builder.collect(0.2)
    down = builder.kinds(EnvelopeKind.CONN_DOWN)
    assert [(d.conn_id, d.seq) for d in down] == [(up[0].conn_id, len(frames))]


async def test_silence_past_the_deadline_reconnects_and_resubscribes(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    bybit.answer_pings = False
    run = start(settings_for(tmp_path, bybit.url, ping_interval=0.5, silence_timeout=1.0))
    await until(lambda: len(bybit.ops("subscribe")) == 1)
    await bybit.send_all([book_frame(1), book_frame(2)])
    began = time.monotonic()
    await until(lambda: len(bybit.ops("subscribe")) == 2, timeout=4.0)
    assert time.monotonic() - began >= 0.8  # not before the silence deadline
    await builder.collect(0.2)
    events = [
        (e.kind, e.conn_id, e.seq)
        for e in builder.kinds(EnvelopeKind.CONN_UP, EnvelopeKind.CONN_DOWN)
    ]
    first, second = events[0][1], events[-1][1]
    assert first != second
    assert events == [
        (EnvelopeKind.CONN_UP, first, 0),
        (EnvelopeKind.CONN_DOWN, first, 2),
        (EnvelopeKind.CONN_UP, second, 0),
    ]
    assert [n for n, _ in bybit.ops("subscribe")] == [0, 1]  # one subscribe per websocket
    assert run.ingestor.totals().silences == 1


async def test_refusing_server_is_retried_with_backoff_not_a_tight_loop(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    bybit.status = 503
    run = start(settings_for(tmp_path, bybit.url, backoff_initial=0.2, backoff_max=0.8))
    await asyncio.sleep(2.5)  # a window over which attempts are counted, not an assertion
    attempts = list(bybit.attempts)
    # Delays are in [base/2, base] with base 0.2, 0.4, 0.8, 0.8...: 2.5 s holds 4 to 8 tries.
    assert 3 <= len(attempts) <= 9, attempts
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert min(gaps) >= 0.09
    assert gaps[-1] > gaps[0]  # it backs off
    totals = run.ingestor.totals()
    assert totals.failures >= len(attempts) - 1 and totals.reconnects >= len(attempts) - 1
    # Then the server recovers, and the ingestor connects.
    bybit.status = None
    await until(lambda: len(bybit.ops("subscribe")) == 1, timeout=3.0)


async def test_new_connections_stay_under_the_rate_cap(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    bybit.close_at_once = True
    settings = settings_for(
        tmp_path, bybit.url, backoff_initial=0.05, backoff_max=0.1, max_new_connections_per_5min=2
    )
    run = start(settings)
    await until(lambda: len(bybit.attempts) == 2)
    await asyncio.sleep(1.0)  # a window in which backoff alone would allow ~10 more
    assert len(bybit.attempts) == 2
    assert run.ingestor.totals().attempts == 2


async def test_resync_request_unsubscribes_then_subscribes_the_topic(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    run = start(settings_for(tmp_path, bybit.url))
    await until(lambda: len(bybit.ops("subscribe")) == 1)
    await until(
        lambda: run.ingestor.connections[0].subscriptions.state(BOOK) is TopicState.SUBSCRIBED
    )
    # Topics this ingestor does not own, and garbage, are ignored (and counted).
    await builder.pub.send_multipart(encode_resync("linear", "orderbook.50.ETHUSDT", "test"))
    await builder.pub.send_multipart([b"resync", b"not json"])

    async def resynced() -> bool:
        if not bybit.ops("unsubscribe"):  # PUB/SUB joins late: repeat until heard
            await builder.pub.send_multipart(encode_resync("linear", BOOK, "test"))
        return bybit.topic_ops(BOOK)[:3] == ["subscribe", "unsubscribe", "subscribe"]

    await until(resynced)
    assert bybit.topic_ops(TRADE) == ["subscribe"]  # the other topic is left alone
    control = run.ingestor.control
    await until(lambda: control.malformed_control >= 1 and control.resync_not_owned >= 1)
    assert run.ingestor.totals().resyncs >= 1


async def test_resync_with_reconnect_replaces_the_connection(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    run = start(settings_for(tmp_path, bybit.url))
    await until(lambda: len(bybit.ops("subscribe")) == 1)
    first = run.ingestor.connections[0]

    async def replaced() -> bool:
        if len(bybit.ops("subscribe")) < 2:  # PUB/SUB joins late: repeat until heard
            await builder.pub.send_multipart(
                encode_resync("linear", BOOK, "no snapshot", reconnect=True)
            )
        return len(bybit.ops("subscribe")) >= 2

    await until(replaced)
    await builder.collect(0.2)
    ups = builder.kinds(EnvelopeKind.CONN_UP)
    assert len({e.conn_id for e in ups}) >= 2  # a new websocket, a new conn_id
    assert not bybit.ops("unsubscribe")  # not the gentle way: a whole new connection
    assert [n for n, _ in bybit.ops("subscribe")][:2] == [0, 1]  # one subscribe per websocket
    assert first.counters.reconnects >= 1


async def test_without_a_builder_frames_are_dropped_and_counted_not_queued(
    bybit: FakeBybit, zctx: zmq.asyncio.Context, tmp_path: Path, start: Callable[..., Running]
) -> None:
    run = start(settings_for(tmp_path, bybit.url))
    await until(lambda: len(bybit.ops("subscribe")) == 1)
    began = time.monotonic()
    await bybit.send_all([book_frame(i) for i in range(1, 301)])
    await until(lambda: run.ingestor.totals().dropped == 300)
    assert time.monotonic() - began < 2.0  # the reader never blocked
    assert run.ingestor.totals().forwarded == 0
    # The builder comes back: the sequence carries on past the dropped frames (a hole).
    raw, _ = endpoints(tmp_path)
    pull = make_socket(zctx, zmq.PULL, raw, bind=True, hwm=1000, linger_ms=0)
    builder = Builder(pull, pull)

    async def delivered() -> bool:
        await bybit.send_all([book_frame(1000)])
        await builder.collect(0.1)
        return bool(builder.kinds(EnvelopeKind.DATA))

    await until(delivered)
    assert builder.kinds(EnvelopeKind.DATA)[0].seq > 300


async def test_refused_topic_is_logged_once_and_never_replayed(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    bybit.refuse = {"orderbook.50.NOPE"}
    run = start(settings_for(tmp_path, bybit.url, symbols=["BTCUSDT", "NOPE"]))
    await until(lambda: len(bybit.ops("subscribe")) == 2)  # the rejected batch, then a retry
    assert bybit.ops("subscribe")[1][1]["args"] == [BOOK, TRADE, "publicTrade.NOPE"]
    # A reconnect subscribes again, without the refused topic.
    for ws in list(bybit.live):
        await ws.close()
    await until(lambda: len(bybit.ops("subscribe")) == 3)
    assert bybit.ops("subscribe")[2][1]["args"] == [BOOK, TRADE, "publicTrade.NOPE"]
    assert run.ingestor.stats()["refused_topics"] == 1


async def test_oversized_frame_closes_with_1009_counts_and_reconnects(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    run = start(settings_for(tmp_path, bybit.url, max_frame_bytes=2048))
    await until(lambda: len(bybit.ops("subscribe")) == 1)
    big = b'{"topic":"' + BOOK.encode() + b'","pad":"' + b"x" * 4096 + b'"}'
    await bybit.send_all([book_frame(1), big])
    await until(lambda: len(bybit.ops("subscribe")) == 2)
    assert run.ingestor.totals().oversized == 1
    await builder.collect(0.2)
    down = builder.kinds(EnvelopeKind.CONN_DOWN)
    assert down and down[0].seq == 1  # the oversized frame never got a seq


async def test_sigterm_stops_a_subprocess_ingestor_with_exit_0(
    bybit: FakeBybit, builder: Builder, tmp_path: Path
) -> None:
    config = write_config(tmp_path, bybit.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdgw.ingestor",
        "--config",
        str(config),
        "--id",
        "ing-sub",
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await until(lambda: len(bybit.ops("subscribe")) == 1, timeout=10.0)
        await bybit.send_all([book_frame(1)])
        await until(lambda: _has(builder, EnvelopeKind.DATA))
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 5.0)
        assert rc == 0
        assert time.monotonic() - began < 5.0
        await builder.collect(0.2)
        down = builder.kinds(EnvelopeKind.CONN_DOWN)
        assert [(d.ingestor, d.seq) for d in down] == [("ing-sub", 1)]
        out = (await proc.stdout.read()).decode() if proc.stdout else ""
        assert '"event":"service_stopped"' in out.replace(" ", "")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _has(builder: Builder, kind: EnvelopeKind) -> bool:
    await builder.collect()
    return bool(builder.kinds(kind))


# ---------------------------------------------------------------- CLI and planning


def test_cli_options_parse_into_a_selection() -> None:
    args, selection = parse_args(
        [
            "--category",
            "linear",
            "--category",
            "spot",
            "--symbols",
            "btcusdt, ETHUSDT",
            "--id",
            "a-1",
        ]
    )
    assert selection == Selection(("linear", "spot"), ("BTCUSDT", "ETHUSDT"))
    assert args.id == "a-1" and args.config is None


@pytest.mark.parametrize(
    "argv",
    [["--category", "spread"], ["--bogus"], ["--symbols", ","], ["--id", "has space"], ["extra"]],
)
def test_bad_options_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == EX_USAGE
    assert "error:" in capsys.readouterr().err


def test_selection_of_unconfigured_streams_exits_64_and_bad_config_78(tmp_path: Path) -> None:
    config = write_config(tmp_path, "ws://127.0.0.1:1/v5/public")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
    cmd = [sys.executable, "-m", "mdgw.ingestor", "--config", str(config)]
    done = subprocess.run(
        [*cmd, "--symbols", "NOSUCH"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 64 and "NOSUCH" in done.stderr
    config.write_text(config.read_text().replace("depth = 50", "depth = 500"))
    done = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 78 and "depth" in done.stderr


def test_make_socket_creates_the_ipc_directory_private(tmp_path: Path) -> None:
    ctx = zmq.Context()
    try:
        sock = make_socket(ctx, zmq.PULL, f"ipc://{tmp_path}/run/raw.sock", bind=True, hwm=5)
        mode = stat.S_IMODE((tmp_path / "run").stat().st_mode)
        assert mode & 0o077 == 0
        assert sock.getsockopt(zmq.RCVHWM) == 5 and sock.getsockopt(zmq.LINGER) == 200
        push = make_socket(ctx, zmq.PUSH, "ipc://nowhere/raw.sock", bind=False, hwm=5)
        assert push.getsockopt(zmq.IMMEDIATE) == 1
        with pytest.raises(zmq.Again):
            push.send(b"x", zmq.NOBLOCK)  # no peer: dropped at once, never queued
        sock.close()
        push.close()
    finally:
        ctx.term()


# ------------------------------------------------------------------ the simulator


async def test_against_the_simulator_resync_and_drop(
    builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    server = pytest.importorskip("mdgw.simulator.server")
    params = pytest.importorskip("mdgw.simulator.params")
    from mdgw.core.bybit import BookFrame, decode_frame

    sim_params = params.SimulatorParams(streams={"linear": ("BTCUSDT",)}, port=0, rate=50.0)
    async with server.SimulatorServer(sim_params) as sim:
        run = start(settings_for(tmp_path, f"ws://127.0.0.1:{sim.port}/v5/public"))

        parsed: list[tuple[int, int, BookFrame]] = []
        seen = 0

        def books() -> list[tuple[int, int, BookFrame]]:
            nonlocal seen
            data = builder.kinds(EnvelopeKind.DATA)
            for e in data[seen:]:
                frame = decode_frame(e.frame)
                if isinstance(frame, BookFrame):
                    parsed.append((e.conn_id, e.seq, frame))
            seen = len(data)
            return parsed

        async def enough_books() -> bool:
            await builder.collect()
            return len(books()) >= 20

        await until(enough_books)
        first = books()
        assert first[0][2].snapshot
        assert all(b.u == a.u + 1 for (_, _, a), (_, _, b) in itertools.pairwise(first))
        data = builder.kinds(EnvelopeKind.DATA)
        assert [e.seq for e in data] == list(range(1, len(data) + 1))

        # A resync brings a fresh snapshot on the same connection.
        async def fresh_snapshot() -> bool:
            if not run.ingestor.totals().resyncs:
                await builder.pub.send_multipart(encode_resync("linear", BOOK, "test"))
            await builder.collect()
            return sum(f.snapshot for _, _, f in books()) >= 2

        await until(fresh_snapshot)

        # A dropped TCP connection: CONN_DOWN, a new conn_id, a new snapshot.
        sim.apply_fault(FaultRequest(FaultKind.DROP, category="linear"))

        async def reconnected() -> bool:
            await builder.collect()
            return (
                len(builder.kinds(EnvelopeKind.CONN_UP)) >= 2
                and len({c for c, _, f in books() if f.snapshot}) >= 2
            )

        await until(reconnected, timeout=8.0)
        ups = builder.kinds(EnvelopeKind.CONN_UP)
        assert ups[0].conn_id != ups[1].conn_id
        assert builder.kinds(EnvelopeKind.CONN_DOWN)[0].conn_id == ups[0].conn_id
        second = [e for e in builder.kinds(EnvelopeKind.DATA) if e.conn_id == ups[1].conn_id]
        assert [e.seq for e in second] == list(range(1, len(second) + 1))


async def test_system_status_connection_is_one_more_socket_on_misc_status(
    bybit: FakeBybit, builder: Builder, tmp_path: Path, start: Callable[..., Running]
) -> None:
    start(settings_for(tmp_path, bybit.url, system_status=True))
    await until(lambda: len(bybit.ops("subscribe")) == 2)
    assert sorted(bybit.paths) == ["/v5/public/linear", "/v5/public/misc/status"]
    args = sorted(tuple(sub["args"]) for _, sub in bybit.ops("subscribe"))
    assert args == [(BOOK, TRADE), ("system.status",)]


def test_only_the_ingestor_serving_the_first_stream_owns_system_status() -> None:
    streams = [
        StreamConfig(category="linear", symbols=["BTCUSDT", "ETHUSDT"], depth=50),
        StreamConfig(category="spot", symbols=["BTCUSDT"], depth=50),
    ]
    assert owns_system_status(streams, Selection())
    assert owns_system_status(streams, Selection(categories=("linear",)))
    assert not owns_system_status(streams, Selection(categories=("spot",)))
    assert not owns_system_status(streams, Selection(symbols=("ETHUSDT",)))


def test_plan_subscribes_rpi_and_shared_trades_once() -> None:
    streams = [
        StreamConfig(category="linear", symbols=["BTCUSDT"], depth=50, rpi=True),
        StreamConfig(category="linear", symbols=["BTCUSDT"], depth=1),
    ]
    assert plan_streams(streams, Selection()) == {
        "linear": [
            [
                "orderbook.50.BTCUSDT",
                "orderbook.rpi.BTCUSDT",
                "publicTrade.BTCUSDT",
                "orderbook.1.BTCUSDT",
            ]
        ]
    }

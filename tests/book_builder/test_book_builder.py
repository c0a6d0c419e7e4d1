"""book_builder as a real process, driven through its real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq

from mdgw import compiled
from mdgw.core import wire
from mdgw.core.wire import EnvelopeKind
from mdgw.runtime import zio
from mdgw.testing import oracles

ROOT = Path(__file__).parents[2]


class Builder:
    def __init__(
        self, tmp: Path, books: str = "resync_timeout = 1.0\nresync_min_interval = 0.2\n"
    ) -> None:
        self.raw = f"ipc://{tmp}/raw.sock"
        self.control = f"ipc://{tmp}/control.sock"
        self.pub = f"ipc://{tmp}/pub.sock"
        self.snapshot = f"ipc://{tmp}/snapshot.sock"
        self.config = tmp / "builder.toml"
        self.config.write_text(
            f'[zmq]\nraw = "{self.raw}"\ncontrol = "{self.control}"\n'
            f'pub = "{self.pub}"\nsnapshot = "{self.snapshot}"\n'
            f"[books]\n{books}"
            '[log]\nstats_interval = 1\nformat = "json"\n'
            "[metrics]\nbook_builder = 0\n"  # no fixed port: tests run side by side
        )
        self.log = tmp / "builder.log"
        env = {**os.environ, "MDGW_CONFIG": str(self.config)}
        with self.log.open("wb") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mdgw.book_builder"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def lines(self) -> list[dict[str, Any]]:
        data = self.log.read_bytes()  # complete lines only: the last may be half written
        return [orjson.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


@pytest.fixture
def builder(tmp_path: Path) -> Iterator[Builder]:
    b = Builder(tmp_path)
    yield b
    if b.proc.poll() is None:
        b.proc.kill()
        b.proc.wait()


def book_frame(
    u: int, bids: list[list[str]], asks: list[list[str]], *, snapshot: bool, symbol: str = "BTCUSDT"
) -> bytes:
    return orjson.dumps(
        {
            "topic": f"orderbook.50.{symbol}",
            "type": "snapshot" if snapshot else "delta",
            "ts": u,
            "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": u},
            "cts": u,
        }
    )


class Ingestor:
    """Plays an ingestor: PUSH connected to the builder's raw socket."""

    def __init__(
        self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, conn_id: int = 7
    ) -> None:
        self.sock = ctx.socket(zmq.PUSH)
        self.sock.connect(endpoint)
        self.conn_id, self.seq = conn_id, 0

    def data(self, frame: bytes, *, skip: int = 0) -> None:
        self.seq += 1 + skip
        self.sock.send(
            oracles.encode_raw(
                EnvelopeKind.DATA,
                ingestor=b"test",
                category=1,
                conn_id=self.conn_id,
                seq=self.seq,
                recv_ns=time.time_ns(),
                frame=frame,
            )
        )

    def raw(self, msg: bytes) -> None:
        self.sock.send(msg)


def subscriber(
    ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, prefix: bytes = b""
) -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(prefix)
    sub.connect(endpoint)
    return sub


def recv_until(
    sock: zmq.Socket[bytes], want: Any, deadline_s: float = 10.0
) -> list[tuple[bytes, dict[str, Any]]]:
    """Receive until ``want(messages)`` is true; fail at the deadline."""
    got: list[tuple[bytes, dict[str, Any]]] = []
    deadline = time.monotonic() + deadline_s
    while not want(got):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {[(t, p.get('channel'), p.get('state')) for t, p in got]}"
        if sock.poll(int(left * 1000)):
            frames = sock.recv_multipart()
            got.append((frames[0], orjson.loads(frames[1])))
    return got


def wait_subscribed(ing: Ingestor, sub: zmq.Socket[bytes]) -> None:
    """PUB/SUB joins asynchronously: feed snapshots until one comes through."""
    deadline = time.monotonic() + 10
    u = 1000
    while time.monotonic() < deadline:
        u += 1
        ing.data(book_frame(u, [["1", "1"]], [["2", "1"]], snapshot=True, symbol="WARMUP"))
        if sub.poll(100):
            sub.recv_multipart()
            return
    raise AssertionError("the subscriber never received anything")


def test_books_resync_snapshot_and_sigterm(
    builder: Builder, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ing = Ingestor(ctx, builder.raw)
    sub = subscriber(ctx, builder.pub)
    control = subscriber(ctx, builder.control)
    wait_subscribed(ing, sub)
    sub.setsockopt(zmq.UNSUBSCRIBE, b"")
    sub.subscribe(b"book.linear.BTCUSDT.")
    sub.subscribe(b"status.linear.BTCUSDT.")
    time.sleep(0.2)  # let the subscription change reach the publisher (not an assertion)

    ing.data(book_frame(100, [["99", "1"]], [["101", "1"]], snapshot=True))
    ing.data(book_frame(101, [["98", "2"]], [], snapshot=False))
    got = recv_until(sub, lambda m: sum(p["channel"] == "book" for _, p in m) == 2)
    books = [p for _, p in got if p["channel"] == "book"]
    assert [(b["u"], b["seq"]) for b in books] == [(100, 1), (101, 2)]
    assert books[1]["bids"] == [["99", "1"], ["98", "2"]]
    assert all(t == b"book.linear.BTCUSDT." for t, p in got if p["channel"] == "book")

    # Late joiner: the snapshot service returns the current book with its seq.
    req = ctx.socket(zmq.REQ)
    req.connect(builder.snapshot)
    req.send(wire.encode_snapshot_request("book.linear.BTCUSDT"))
    assert req.poll(5000)
    items = wire.decode_snapshot_reply(req.recv_multipart())
    assert [(t, p["seq"], p["u"]) for t, p in items] == [(b"book.linear.BTCUSDT.", 2, 101)]

    # A u gap: status resyncing, a resync request on control, no book until a snapshot.
    ing.data(book_frame(105, [["97", "1"]], [], snapshot=False))
    got = recv_until(sub, lambda m: any(p.get("state") == "resyncing" for _, p in m))
    assert [p["channel"] for _, p in got] == ["status"]
    assert control.poll(5000)
    request = wire.decode_resync(control.recv_multipart())
    assert (request.category, request.topic) == ("linear", "orderbook.50.BTCUSDT")
    ing.data(book_frame(106, [["96", "1"]], [], snapshot=False))
    restart = book_frame(1, [["50", "1"]], [["51", "1"]], snapshot=True)
    ing.data(restart.replace(b'"ts":1,', b'"ts":9001,'))  # Bybit's restart: u = 1, newer ts
    got = recv_until(sub, lambda m: any(p["channel"] == "book" for _, p in m))
    assert [(p["channel"], p.get("state"), p.get("u")) for _, p in got] == [
        ("status", "live", None),
        ("book", None, 1),
    ]
    assert got[1][1]["seq"] == 3  # gateway seq never resets

    # Bad input of every kind is counted, never fatal.
    ing.raw(b"")
    ing.raw(b"\xff" * 100)
    ing.data(b"not json at all")
    ing.data(b'{"topic":"orderbook.50.BTCUSDT","type":"delta","data":[1,2')
    ing.data(b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{}}')
    ing.data(
        orjson.dumps(
            {
                "topic": "orderbook.50.BTCUSDT",
                "type": "delta",
                "ts": 1,
                "data": {"s": "BTCUSDT", "b": [["NaN", "1"]], "a": [], "u": 2},
            }
        )
    )
    got = recv_until(sub, lambda m: any(p.get("state") == "resyncing" for _, p in m))
    assert all(p["channel"] == "status" for _, p in got)
    bad = ctx.socket(zmq.REQ)
    bad.connect(builder.snapshot)
    bad.send(b"\x00" * 300)
    assert bad.poll(5000)
    assert bad.recv_multipart()[0] == wire.ERROR
    assert builder.proc.poll() is None

    started = time.monotonic()
    assert builder.stop() == 0
    assert time.monotonic() - started < 5
    events = {line["event"] for line in builder.lines()}
    assert {"book_resyncing", "malformed_frame", "bad_envelope", "stats_final"} <= events
    final = next(line for line in builder.lines() if line["event"] == "stats_final")
    assert final["bad_envelopes"] == 2 and final["malformed"] >= 3 and final["unsupported"] == 1
    # The compiled build's builder receives and sends in C (mdgw.runtime.zio); the pure one
    # with pyzmq, and its startup line says why.
    started_line = next(line for line in builder.lines() if line["event"] == "book_builder_started")
    assert started_line["zmq_io"] == zio.ACTIVE
    assert started_line["zmq_io"].startswith("C (" if compiled.IS_COMPILED else "pyzmq (")


def test_resync_requests_missed_while_no_ingestor_listened_are_repeated_on_join(
    tmp_path: Path, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    # resync_timeout is long: only the join can explain a prompt second request.
    b = Builder(tmp_path, books="resync_timeout = 60\nresync_min_interval = 0.1\n")
    try:
        ing = Ingestor(ctx, b.raw)
        watcher = subscriber(ctx, b.pub, b"status.")
        deadline = time.monotonic() + 10
        n = 0
        while not watcher.poll(100):  # until the builder has seen a delta and said so
            assert time.monotonic() < deadline, "no status from the builder"
            # A new symbol each time: one book says "resyncing" once, and the first such
            # status may go out before this subscription has reached the publisher.
            n += 1
            ing.data(book_frame(100, [["99", "1"]], [], snapshot=False, symbol=f"S{n}USDT"))
        # That request went out on control while nobody listened. Now an ingestor joins.
        control = subscriber(ctx, b.control, b"resync")
        started = time.monotonic()
        assert control.poll(5000), "the pending request was not repeated to the new subscriber"
        request = wire.decode_resync(control.recv_multipart())
        assert request.topic.startswith("orderbook.50.S") and request.reconnect is False
        assert time.monotonic() - started < 5
    finally:
        assert b.stop() == 0


def test_max_rate_conflates_a_burst_and_the_last_state_gets_out(
    tmp_path: Path, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    builder = Builder(tmp_path, books="max_rate = 2\n")  # one book per 0.5 s at most
    try:
        ing = Ingestor(ctx, builder.raw)
        sub = subscriber(ctx, builder.pub)
        wait_subscribed(ing, sub)
        sub.subscribe(b"book.linear.BTCUSDT.")
        sub.setsockopt(zmq.UNSUBSCRIBE, b"")
        time.sleep(0.2)  # let the subscription change reach the publisher (not an assertion)
        ing.data(book_frame(100, [["99", "1"]], [["101", "1"]], snapshot=True))
        recv_until(sub, lambda m: len(m) == 1)  # the snapshot's book, at once
        started = time.monotonic()
        for u in range(101, 301):  # a burst of 200 deltas
            ing.data(book_frame(u, [["99", str(u)]], [], snapshot=False))
        got = recv_until(sub, lambda m: bool(m) and m[-1][1]["u"] == 300)
        assert time.monotonic() - started < 5.0
        # 200 deltas within far less than 0.5 s each: a handful of books, not 200; the last
        # one is the whole burst applied, seq +1 per message.
        assert 1 <= len(got) <= 1 + (time.monotonic() - started) / 0.5 + 1
        assert [p["seq"] for _, p in got] == list(range(2, 2 + len(got)))
        assert got[-1][1]["bids"] == [["99", "300"]]
        assert builder.stop() == 0
        started_line = next(x for x in builder.lines() if x["event"] == "book_builder_started")
        assert started_line["max_rate"] == 2.0
        assert started_line["hot_path"].startswith(("compiled", "pure-Python"))
    finally:
        if builder.proc.poll() is None:
            builder.proc.kill()
            builder.proc.wait()


class _FlakyHub:
    """Stands in for the hub in ``_drain``: records what it is given, raises on ``bad``."""

    def __init__(self, bad: set[bytes]) -> None:
        self.bad = bad
        self.given: list[bytes] = []
        self.next_due: float | None = None
        self.outbox: list[tuple[bytes, bytes]] = []
        self.control: list[list[bytes]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_raw(self, msg: bytes, now: float) -> None:
        self.given.append(msg)
        if msg in self.bad:
            raise RuntimeError("hub bug")


def test_a_message_on_which_the_hub_raises_costs_that_message_only(
    ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    """The real ``_drain`` on a real PULL: every message reaches the hub once and in order,
    each one it raises on is reported (``internal_error``, with that message's size and
    head) and the batch goes on after it: first, consecutive, middle and last of a batch."""
    from mdgw.testing.bench import drain_inproc

    msgs = [b"m" * 30 + i.to_bytes(4, "big") * (1 + i % 5) for i in range(120)]
    bad_at = [0, 1, 2, 17, 39, 40, 79, 119]  # wake-ups of 40: first, last, and between
    hub = _FlakyHub({msgs[i] for i in bad_at})
    raw = drain_inproc._Backlog(ctx, msgs, 40, 9_001)
    builder, sub = drain_inproc._builder(ctx, raw, 9_001)
    builder.hub = hub  # type: ignore[assignment]
    reported: list[dict[str, Any]] = []
    builder.events.emit = lambda event, fields: reported.append({"event": event, **fields})  # type: ignore[method-assign]
    try:
        while raw.wake():
            builder._drain()
    finally:
        builder.pub.close()
        sub.close()
        raw.close()
    assert hub.given == msgs
    assert builder.internal_errors == len(bad_at)
    assert [(r["event"], r["size"], r["head"]) for r in reported] == [
        ("internal_error", len(msgs[i]), msgs[i][24:120].hex()) for i in bad_at
    ]

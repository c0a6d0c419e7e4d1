"""Fuzz book_builder through its raw socket, with valid frames whose book is known in between.

Plays a hostile (or broken) ingestor on the raw PUSH socket for ``--seconds``:

- **valid frames** of two tracked books (``orderbook.50.BTCUSDT``/``ETHUSDT``, linear): a
  snapshot, then deltas, and a fresh snapshot now and then (as after a resubscribe). A
  reference book (:class:`mdgw.simulator.testing.ReferenceBook`) gives the correct top-25
  at every ``u``;
- **hostile frames** on the same connection, each with a definite defect: wrong types,
  huge numbers, NaN/Infinity, negative or non-numeric sizes, 10 MB strings in checked
  fields, deeply nested JSON, non-UTF-8 bytes, truncated or non-object JSON, unknown
  topics. Each must be refused: counted as ``malformed`` (or ``unsupported`` for unknown
  topics), never applied;
- **random mutations** (byte flips, cuts, splices) of frames of decoy symbols, from
  decoy ingestors: anything may happen to them, but they may not touch the tracked books;
- **bad envelopes**: too short, wrong version, kind, category, empty or non-UTF-8 ingestor
  id, truncated id, random bytes. Each must be counted as ``bad_envelopes``;
- **valid envelopes with bad timing**: sequence holes, CONN_DOWN/CONN_UP, heartbeats.

A SUB on the pub socket checks that every ``book`` message of a tracked symbol equals the
reference at its ``u``. The report has the builder's RSS before and after, its counters,
how many of each kind were sent, and its log volume.

    .venv/bin/python scripts/fuzz_builder.py --seconds 120     # starts its own book_builder

Exit status 1 if a wrong book was published, a rejection was not counted, book_builder
died, or its memory grew by more than ``--rss-growth-mib``. tests/reliability/
test_hostile_input.py runs :func:`fuzz` for 20 s (2 minutes with RELIABILITY_LONG=1).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import zmq

from mdgw.core import wire
from mdgw.core.bybit import decode_frame
from mdgw.core.errors import ParseError, UnsupportedTopicError
from mdgw.core.hub import Hub
from mdgw.core.wire import EnvelopeKind
from mdgw.simulator.testing import ReferenceBook

TRACKED = ("BTCUSDT", "ETHUSDT")
DECOYS = ("DECOYONEUSDT", "DECOYTWOUSDT", "DECOYTHREEUSDT")
CATEGORY = "linear"
CATEGORY_CODE = wire.category_code(CATEGORY)
DEPTH = 50
PUBLISH_DEPTH = 25
INGESTOR = b"fuzz-ingestor"
DECOY_INGESTORS = (b"decoy-a", b"decoy-b", b"decoy-c")
MAX_LEVELS = 40  # per side: below the topic's depth, so no level ever falls off the window
TEN_MB = 10 * 1024 * 1024


@dataclass
class Sent:
    valid: int = 0
    hostile: Counter[str] = field(default_factory=Counter)  # kind -> count
    expect_malformed: int = 0
    expect_unsupported: int = 0
    expect_bad_envelopes: int = 0
    mutations: int = 0
    mutations_malformed: int = 0  # as mdgw.core.bybit.decode_frame classifies them
    mutations_unsupported: int = 0
    envelopes: int = 0  # every message sent, good or bad
    not_refused_locally: list[str] = field(default_factory=list)
    # Frames that make mdgw.core.hub.Hub.on_raw raise (which ends book_builder's pump):
    # held back and counted, so that the run can go on; see KNOWN_CRASHERS.
    crashers_held_back: int = 0
    crasher_samples: list[str] = field(default_factory=list)


@dataclass
class Checked:
    books: int = 0  # book messages of tracked symbols received
    matched: int = 0
    wrong: list[str] = field(default_factory=list)
    unknown_u: int = 0  # a u the fuzzer never sent for that symbol (a hostile frame applied)


# --- valid frames with a reference --------------------------------------------------------


class TrackedBook:
    """One tracked topic: generates valid frames and remembers the true top at each u."""

    def __init__(self, symbol: str, rng: random.Random) -> None:
        self.symbol = symbol
        self.topic = f"orderbook.{DEPTH}.{symbol}"
        self.rng = rng
        self.ref = ReferenceBook()
        self.u = 0
        self.truth: dict[int, tuple[list[list[str]], list[list[str]]]] = {}

    @staticmethod
    def _price(key: int) -> str:
        return f"{key / 100:.2f}"

    def _size(self) -> str:
        return f"{self.rng.randint(1, 50_000) / 1000:.3f}"

    def snapshot(self) -> bytes:
        rng = self.rng
        bids = sorted(rng.sample(range(9_000, 9_999), MAX_LEVELS // 2), reverse=True)
        asks = sorted(rng.sample(range(10_001, 11_000), MAX_LEVELS // 2))
        return self._frame(
            "snapshot",
            [[self._price(k), self._size()] for k in bids],
            [[self._price(k), self._size()] for k in asks],
        )

    def delta(self) -> bytes:
        """Up to three changes per side: delete, resize or insert; never crossed."""
        rng = self.rng
        changes: dict[str, list[list[str]]] = {"b": [], "a": []}
        for side, held, lo, hi in (
            ("b", self.ref.bids, 9_000, 9_999),
            ("a", self.ref.asks, 10_001, 11_000),
        ):
            touched: set[Decimal] = set()  # one change per price: the last would win
            levels = len(held)
            for _ in range(rng.randint(0, 3)):
                roll = rng.random()
                candidates = [p for p in held if p not in touched]
                if candidates and (roll < 0.3 or levels >= MAX_LEVELS):
                    price = rng.choice(candidates)
                    touched.add(price)
                    levels -= 1
                    changes[side].append([held[price][0], "0"])
                elif candidates and roll < 0.6:
                    price = rng.choice(candidates)
                    touched.add(price)
                    changes[side].append([held[price][0], self._size()])
                else:
                    text = self._price(rng.randint(lo, hi))
                    if Decimal(text) not in held and Decimal(text) not in touched:
                        touched.add(Decimal(text))
                        levels += 1
                        changes[side].append([text, self._size()])
        return self._frame("delta", changes["b"], changes["a"])

    def _frame(self, kind: str, bids: list[list[str]], asks: list[list[str]]) -> bytes:
        self.u += 1
        frame = {
            "topic": self.topic,
            "type": kind,
            "ts": 1_700_000_000_000 + self.u,
            "data": {"s": self.symbol, "b": bids, "a": asks, "u": self.u, "seq": self.u},
            "cts": 1_700_000_000_000 + self.u,
        }
        self.ref.apply(frame)
        self.truth[self.u] = (
            [list(x) for x in self.ref.bid_levels()[:PUBLISH_DEPTH]],
            [list(x) for x in self.ref.ask_levels()[:PUBLISH_DEPTH]],
        )
        return orjson.dumps(frame)


# --- hostile frames -----------------------------------------------------------------------

Factory = Callable[[TrackedBook, random.Random], bytes]
BIG_KINDS = frozenset({"huge symbol", "huge price", "huge topic", "huge trade id"})


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _delta(book: TrackedBook, **over: Any) -> bytes:
    """The book's next delta (its next u) with *over* replacing fields; ``data`` merges."""
    u = book.u + 1
    data = {"s": book.symbol, "b": [["99.00", "1.000"]], "a": [], "u": u, "seq": u}
    data.update(over.pop("data", {}))
    obj = {"topic": book.topic, "type": "delta", "ts": 1, "data": data, "cts": 1}
    obj.update(over)
    return orjson.dumps(obj)


def _trade(symbol: str, *, side: str = "Buy", price: str = "99.00", trade_id: str = "t1") -> bytes:
    trade = {"T": 1, "s": symbol, "S": side, "v": "1", "p": price, "i": trade_id, "BT": False}
    return orjson.dumps({"topic": f"publicTrade.{symbol}", "ts": 1, "data": [trade]})


def _level(levels: Any) -> Factory:
    return lambda book, rng: _delta(book, data={"b": levels})


def _field(**over: Any) -> Factory:
    return lambda book, rng: _delta(book, **over)


def _patched(old: bytes, new: bytes) -> Factory:
    return lambda book, rng: _delta(book).replace(old, new, 1)


_BAD_LEVELS: list[tuple[str, Any]] = [
    ("negative price", [["-99.00", "1"]]),
    ("negative size", [["99.00", "-1"]]),
    ("nan price", [["nan", "1"]]),
    ("inf size", [["99.00", "inf"]]),
    ("exponent price", [["1e5", "1"]]),
    ("empty size", [["99.00", ""]]),
    ("zero price", [["0", "1"]]),
    ("two dots", [["99.00", "1.2.3"]]),
    ("number price", [[99.0, "1"]]),
    ("number size", [["99.00", 1]]),
    ("short level", [["99.00"]]),
    ("long level", [["99.00", "1", "2"]]),
    ("null level", [None]),
    ("string level", ["99.00"]),
    ("levels as object", {"99.00": "1"}),
    ("50-digit price", [["9" * 50, "1"]]),
    ("18 significant digits", [["1234567890.12345678", "1"]]),
    ("100-digit size", [["99.00", "1" * 100]]),
    ("leading space", [[" 99.00", "1"]]),
    ("decimal comma", [["99,00", "1"]]),
]

# (kind, the counter that must count it, how to build it from the tracked book).
HOSTILE: list[tuple[str, str, Factory]] = [
    *((kind, "malformed", _level(levels)) for kind, levels in _BAD_LEVELS),
    *(
        (f"u={value!r}", "malformed", _field(data={"u": value}))
        for value in ("7", 7.5, None, [7], {"u": 7}, -7, True)
    ),
    *((f"ts={value!r}", "malformed", _field(ts=value)) for value in ("1", -1, 1.5, None)),
    # Past 64 bits orjson parses a float (which the decoder refuses); it cannot write them.
    (
        "u=2**64",
        "malformed",
        lambda b, r: _delta(b).replace(b'"u":', b'"u":1844674407370955161', 1),
    ),
    ("ts=10**30", "malformed", _patched(b'"ts":1', b'"ts":1000000000000000000000000000000')),
    ("cts not an int", "malformed", _field(cts="x")),
    ("negative seq", "malformed", _field(data={"seq": -5})),
    ("bad type", "malformed", _field(type="snapshotX")),
    ("no type", "malformed", lambda b, r: orjson.dumps({"topic": b.topic, "ts": 1, "data": {}})),
    (
        "data a list",
        "malformed",
        lambda b, r: orjson.dumps({"topic": b.topic, "type": "delta", "data": []}),
    ),
    ("symbol mismatch", "malformed", _field(data={"s": "OTHERUSDT"})),
    ("b not a list", "malformed", _field(data={"b": "x"})),
    ("huge symbol", "malformed", _field(data={"s": "X" * TEN_MB})),
    ("huge price", "malformed", _level([["9" * TEN_MB, "1"]])),
    (
        "huge topic",
        "malformed",
        lambda b, r: orjson.dumps({"topic": "orderbook.50." + "Y" * TEN_MB}),
    ),
    ("huge trade id", "malformed", lambda b, r: _trade(b.symbol, trade_id="i" * TEN_MB)),
    (
        "deeply nested array",
        "malformed",
        lambda b, r: (
            b'{"topic":"%s","type":"delta","data":{"s":"%s","b":%s}}'
            % (b.topic.encode(), b.symbol.encode(), _nested(100_000))
        ),
    ),
    (
        "deeply nested object",
        "malformed",
        lambda b, r: (
            b'{"topic":"%s","data":' % b.topic.encode()
            + b'{"a":' * 5000
            + b"1"
            + b"}" * 5000
            + b"}"
        ),
    ),
    ("NaN literal", "malformed", _patched(b'"ts":1', b'"ts":NaN')),
    ("Infinity literal", "malformed", _patched(b'"ts":1', b'"ts":Infinity')),
    ("huge exponent", "malformed", _patched(b'"ts":1', b'"ts":1e999')),
    (
        "non-UTF-8 symbol",
        "malformed",
        lambda b, r: _delta(b).replace(b.symbol.encode(), b"\xff\xfe", 1),
    ),
    ("non-UTF-8 level", "malformed", _patched(b"99.00", b"99\xc3\x28")),
    ("truncated", "malformed", lambda b, r: _delta(b)[: r.randint(12, 60)]),
    ("a JSON array", "malformed", lambda b, r: orjson.dumps([b.topic, b.u])),
    ("a JSON string", "malformed", lambda b, r: orjson.dumps(b.topic)),
    ("empty", "malformed", lambda b, r: b""),
    ("whitespace", "malformed", lambda b, r: b"   "),
    ("no topic", "malformed", lambda b, r: orjson.dumps({"type": "delta", "data": {}})),
    ("topic a number", "malformed", lambda b, r: orjson.dumps({"topic": 5})),
    ("bad depth in topic", "malformed", lambda b, r: _delta(b, topic=f"orderbook.x.{b.symbol}")),
    ("trade side Hold", "malformed", lambda b, r: _trade(b.symbol, side="Hold")),
    ("trade price -1", "malformed", lambda b, r: _trade(b.symbol, price="-1")),
    ("unknown topic", "unsupported", lambda b, r: orjson.dumps({"topic": f"tickers.{b.symbol}"})),
    ("kline topic", "unsupported", lambda b, r: orjson.dumps({"topic": f"kline.1.{b.symbol}"})),
]


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """A random byte-level mutation: flips, cuts, splices, duplications."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if not data:
            break
        i = rng.randrange(len(data))
        if roll < 0.4:
            data[i] = rng.randrange(256)
        elif roll < 0.55:
            del data[i : i + rng.randint(1, 20)]
        elif roll < 0.7:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif roll < 0.85:
            j = rng.randrange(len(data))
            data[i:i] = data[j : j + rng.randint(1, 40)]
        else:
            data[i:i] = rng.choice([b"NaN", b"-", b"1e999", b'"', b"[", b"{", b"\xff", b"null"])
    return bytes(data)


def bad_envelopes(rng: random.Random) -> list[bytes]:
    """Messages that are not version-1 envelopes, each for its own reason."""
    header = wire.encode_raw(
        EnvelopeKind.DATA,
        ingestor=INGESTOR,
        category=CATEGORY_CODE,
        conn_id=1,
        seq=1,
        recv_ns=1,
        frame=b"{}",
    )
    out = [
        b"",
        b"\x01",
        header[:23],
        b"\x02" + header[1:],  # version 2
        b"\x00" + header[1:],
        header[:1] + b"\x09" + header[2:],  # kind 9
        header[:2] + b"\x07" + header[3:],  # category 7
        header[:3] + b"\x00" + header[4:],  # empty ingestor id
        header[:3] + b"\xff" + header[4 : wire.HEADER_SIZE] + b"abc",  # id past the end
        header[: wire.HEADER_SIZE - 20] + header[4 : wire.HEADER_SIZE],  # shifted
        header[:3] + b"\x02" + header[4 : wire.HEADER_SIZE] + b"\xff\xfe{}",  # id not UTF-8
    ]
    for _ in range(8):
        junk = bytearray(rng.randbytes(rng.randint(0, 300)))
        if junk:
            junk[0] = rng.choice([0, 2, 3, 255])  # never version 1
        out.append(bytes(junk))
    return out


def hub_raises(envelope: bytes) -> str | None:
    """What a fresh :class:`Hub` raises on *envelope* (None if nothing): a local canary.

    ``Hub.on_raw`` is meant to count and log bad input, never raise; an exception there ends
    book_builder's pump task (see KNOWN_CRASHERS and docs/reliability.md).
    """
    hub = Hub(
        publish_depth=PUBLISH_DEPTH,
        resync_timeout=5.0,
        resync_min_interval=1.0,
        ingestor_timeout=3.0,
        stale_after=60.0,
        clock_ns=time.time_ns,
    )
    try:
        hub.on_raw(envelope, 1.0)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def _book_frame(topic: str, symbol: str) -> bytes:
    data = {"s": symbol, "b": [["1.0", "1"]], "a": [["2.0", "1"]], "u": 1, "seq": 1}
    return orjson.dumps({"topic": topic, "type": "snapshot", "ts": 1, "data": data})


def _trade_frame(symbol: str) -> bytes:
    return _trade(symbol)


# Well-formed or malformed frames that make Hub.on_raw raise instead of counting them
# (found by this fuzzer): a depth of 0 in the topic (OrderBook(0) raises ValueError), or a
# symbol the wire format refuses (wire.topic raises WireError). One of them ends
# book_builder's pump task, and the process goes on without reading the raw socket.
KNOWN_CRASHERS: dict[str, bytes] = {
    "book frame for orderbook.0.BTCUSDT": _book_frame("orderbook.0.BTCUSDT", "BTCUSDT"),
    "malformed frame for orderbook.0.BTCUSDT": b'{"topic":"orderbook.0.BTCUSDT","type":',
    "book frame for symbol BTC/USDT": _book_frame("orderbook.50.BTC/USDT", "BTC/USDT"),
    "book frame for a 65-character symbol": _book_frame("orderbook.50." + "A" * 65, "A" * 65),
    "trade frame for symbol 'BTC USDT'": _trade_frame("BTC USDT"),
}


# --- the fuzzer ---------------------------------------------------------------------------


class Fuzzer:
    """Sends to the raw endpoint, checks what the pub endpoint publishes (in a thread)."""

    def __init__(self, raw: str, pub: str, *, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 10_000)
        # A book_builder that stops reading must fail the run, not hang it.
        self.push.setsockopt(zmq.SNDTIMEO, 10_000)
        self.push.connect(raw)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        for symbol in TRACKED:
            self.sub.subscribe(wire.topic("book", CATEGORY, symbol))
        self.sub.connect(pub)
        self.books = {s: TrackedBook(s, random.Random(f"{seed}/{s}")) for s in TRACKED}
        self.decoys = {s: TrackedBook(s, random.Random(f"{seed}/{s}")) for s in DECOYS}
        self.sent = Sent()
        self.checked = Checked()
        self.last_u: dict[str, int] = {}
        self.conn_id = 1
        self.seq = 0
        self._big_at = 0.0
        self._reconnected_at = 0.0
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="fuzz-sub", daemon=True)

    # --- sending --------------------------------------------------------------------------

    def _send(self, msg: bytes) -> None:
        self.sent.envelopes += 1
        self.push.send(msg, copy=len(msg) < 65536)

    def _data(self, frame: bytes, *, ingestor: bytes = INGESTOR, canary: bool = False) -> bool:
        """Send a DATA envelope; with *canary*, not if it would make the hub raise."""
        if ingestor == INGESTOR:
            conn, seq = self.conn_id, self.seq + 1
        else:  # a decoy ingestor: any connection, any sequence
            conn, seq = self.rng.randint(1, 5), self.rng.randint(1, 1000)
        envelope = wire.encode_raw(
            EnvelopeKind.DATA,
            ingestor=ingestor,
            category=CATEGORY_CODE,
            conn_id=conn,
            seq=seq,
            recv_ns=time.time_ns(),
            frame=frame,
        )
        if canary:
            raised = hub_raises(envelope)
            if raised is not None:
                self.sent.crashers_held_back += 1
                if len(self.sent.crasher_samples) < 10:
                    self.sent.crasher_samples.append(f"{frame[:80]!r}: {raised}")
                return False
        if ingestor == INGESTOR:
            self.seq = seq
        self._send(envelope)
        return True

    def _event(self, kind: EnvelopeKind, *, ingestor: bytes = INGESTOR, seq: int = 0) -> None:
        self._send(
            wire.encode_raw(
                kind,
                ingestor=ingestor,
                category=CATEGORY_CODE,
                conn_id=self.conn_id if ingestor == INGESTOR else 9,
                seq=seq,
                recv_ns=time.time_ns(),
            )
        )

    def _valid(self, book: TrackedBook, snapshot: bool = False) -> None:
        self._data(book.snapshot() if snapshot else book.delta())
        self.sent.valid += 1

    def _hostile(self) -> None:
        book = self.books[self.rng.choice(TRACKED)]
        kind, expected, factory = self.rng.choice(HOSTILE)
        if kind in BIG_KINDS:  # 10 MB each: at most two per second
            now = time.monotonic()
            if now - self._big_at < 0.5:
                kind, expected, factory = HOSTILE[0]
            else:
                self._big_at = now
        frame = factory(book, self.rng)
        if not self._data(frame, canary=True):
            return
        try:
            decode_frame(frame)
        except UnsupportedTopicError:
            local = "unsupported"
        except ParseError:
            local = "malformed"
        else:
            local = "accepted"
        if local != expected:  # the decoder disagrees with the oracle: a validation bug
            self.sent.not_refused_locally.append(f"{kind}: {expected} expected, got {local}")
        self.sent.hostile[kind] += 1
        if expected == "malformed":
            self.sent.expect_malformed += 1
        else:
            self.sent.expect_unsupported += 1

    def _mutation(self) -> None:
        decoy = self.decoys[self.rng.choice(DECOYS)]
        base = decoy.snapshot() if self.rng.random() < 0.2 else decoy.delta()
        frame = mutate(base, self.rng)
        if not self._data(frame, ingestor=self.rng.choice(DECOY_INGESTORS), canary=True):
            return
        try:
            decode_frame(frame)
        except UnsupportedTopicError:
            self.sent.mutations_unsupported += 1
        except ParseError:
            self.sent.mutations_malformed += 1
        self.sent.mutations += 1

    def _bad_envelope(self) -> None:
        self.sent.expect_bad_envelopes += 1
        self.sent.hostile["bad envelope"] += 1
        self._send(self.rng.choice(bad_envelopes(self.rng)))

    def _timing(self) -> None:
        """Valid envelopes at bad moments: holes, reconnects, heartbeats."""
        roll = self.rng.random()
        now = time.monotonic()
        if roll < 0.3:
            self.seq += self.rng.randint(1, 5)  # frames lost: a sequence hole
        elif roll < 0.5 and now - self._reconnected_at >= 1.0:
            # At most one reconnect per second: a real ingestor backs off (and each new
            # connection id is a new subject for book_builder's rate-limited log).
            self._reconnected_at = now
            self._event(EnvelopeKind.CONN_DOWN, seq=self.seq)
            self.conn_id += 1
            self.seq = 0
            self._event(EnvelopeKind.CONN_UP)
            for book in self.books.values():
                self._valid(book, snapshot=True)  # a new connection brings snapshots
        else:
            self._event(EnvelopeKind.HEARTBEAT, ingestor=self.rng.choice(DECOY_INGESTORS))

    # --- checking ---------------------------------------------------------------------------

    def _read(self) -> None:
        sub, checked = self.sub, self.checked
        while not self._stop.is_set():
            if not sub.poll(100):
                continue
            for _ in range(1000):
                try:
                    _, data = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = orjson.loads(data)
                symbol, u = msg["symbol"], msg["u"]
                checked.books += 1
                self.last_u[symbol] = u
                want = self.books[symbol].truth.get(u)
                if want is None:
                    checked.unknown_u += 1
                    checked.wrong.append(f"{symbol} u={u}: no valid frame had this u")
                elif [msg["bids"], msg["asks"]] != list(want):
                    checked.wrong.append(f"{symbol} u={u}: differs from the reference")
                else:
                    checked.matched += 1

    # --- the run --------------------------------------------------------------------------

    def warm_up(self, timeout: float = 10.0) -> None:
        """Start the reader, connect, and bring the tracked books live; wait for them."""
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not all(self.last_u.get(s) for s in TRACKED):
            if time.monotonic() > deadline:
                raise RuntimeError("the tracked books never went live")
            # Until the SUB subscription reaches the publisher, books may go unseen: repeat.
            self._event(EnvelopeKind.CONN_UP)
            self.seq = 0
            for book in self.books.values():
                self._valid(book, snapshot=True)
                for _ in range(20):
                    self._valid(book)
            time.sleep(0.1)

    def run(self, seconds: float, on_second: Callable[[], None] | None = None) -> None:
        """Fuzz for *seconds*: per round a few valid deltas and one hostile message."""
        rng = self.rng
        books = list(self.books.values())
        end = time.monotonic() + seconds
        next_second = time.monotonic() + 1.0
        rounds = 0
        while time.monotonic() < end:
            rounds += 1
            for _ in range(rng.randint(1, 4)):
                self._valid(rng.choice(books))
            roll = rng.random()
            if roll < 0.35:
                self._hostile()
            elif roll < 0.75:
                self._mutation()
            elif roll < 0.85:
                self._bad_envelope()
            else:
                self._timing()
            if rounds % 40 == 0:
                for book in books:  # as after a resubscribe: the books go live again
                    self._valid(book, snapshot=True)
            if rounds % 10 == 0:
                time.sleep(0.002)  # thousands of messages per second, not a flood
            now = time.monotonic()
            if on_second is not None and now >= next_second:
                next_second = now + 1.0
                on_second()
        # End on a good stretch, so that every tracked book is live and published.
        for book in books:
            self._valid(book, snapshot=True)
            for _ in range(5):
                self._valid(book)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the last valid frame of each tracked book was published."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.last_u.get(s, 0) >= b.u for s, b in self.books.items()):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._reader.join(2)
        self.push.close(linger=2000)
        self.sub.close(linger=0)
        self.ctx.term()


# --- against a real book_builder ----------------------------------------------------------


def builder_config(tmp: Path, raw: str, pub: str, snapshot: str) -> Path:
    config = tmp / "fuzz.toml"
    config.write_text(
        f'[zmq]\nraw = "{raw}"\ncontrol = "ipc://{tmp}/control.sock"\n'
        f'pub = "{pub}"\nsnapshot = "{snapshot}"\n'
        "[books]\npublish_depth = 25\nresync_timeout = 1.0\nresync_min_interval = 0.2\n"
        '[log]\nformat = "json"\nstats_interval = 1\n'
        "[metrics]\nbook_builder = 0\n"
    )
    return config


def fuzz(builder: Any, raw: str, pub: str, seconds: float, seed: int = 1) -> dict[str, Any]:
    """Fuzz the running *builder* (a ``gateway_stack.Service``); the report as a dict.

    ``counted`` is True when the builder's counters account for every rejection sent.
    """
    fuzzer = Fuzzer(raw, pub, seed=seed)
    rss: list[int] = []
    try:
        fuzzer.warm_up()
        time.sleep(1.0)  # let the start-up allocations settle (not an assertion)
        rss_before = builder.rss_kib()
        started = time.monotonic()
        fuzzer.run(seconds, on_second=lambda: rss.append(builder.rss_kib()))
        elapsed = time.monotonic() - started
        settled = fuzzer.settle()
    finally:
        fuzzer.close()
    sent = fuzzer.sent
    # The stats line that has seen every envelope sent (one per second).
    deadline = time.monotonic() + 10
    stats = builder.stats() or {}
    while stats.get("envelopes", 0) < sent.envelopes and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = builder.stats() or {}
    rss_after = builder.rss_kib()
    expected = {
        "bad_envelopes": sent.expect_bad_envelopes,
        "malformed": sent.expect_malformed + sent.mutations_malformed,
        "unsupported": sent.expect_unsupported + sent.mutations_unsupported,
    }
    got = {k: stats.get(k) for k in expected}
    log_lines = len(builder.raw_lines())
    return {
        "seconds": round(elapsed, 1),
        "alive": builder.alive,
        "settled": settled,
        "sent": {**asdict(sent), "hostile": dict(sent.hostile)},
        "envelopes_counted": stats.get("envelopes"),
        "checked": {**asdict(fuzzer.checked), "wrong": fuzzer.checked.wrong[:10]},
        "wrong": len(fuzzer.checked.wrong),
        "expected_counters": expected,
        "builder_counters": got,
        "counted": got == expected and not sent.not_refused_locally,
        "books": stats.get("books"),
        "rss_before_kib": rss_before,
        "rss_peak_kib": max([rss_before, *rss]),
        "rss_after_kib": rss_after,
        "rss_growth_kib": rss_after - rss_before,
        "rss_series_kib": rss,
        "log_lines": log_lines,
        "log_lines_per_s": round(log_lines / max(elapsed, 1e-9), 1),
    }


def main() -> int:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from gateway_stack import Service, free_port

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-growth-mib", type=float, default=64.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mdgw-fuzz-", dir="/tmp"))
    raw = f"ipc://{tmp}/raw.sock"
    pub, snapshot = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    builder = Service("book_builder", builder_config(tmp, raw, pub, snapshot), tmp / "builder.log")
    builder.start()
    try:
        report = fuzz(builder, raw, pub, args.seconds, args.seed)
    finally:
        status = builder.stop()
    report["exit_status"] = status
    print(json.dumps(report, indent=1))
    ok = (
        report["alive"]
        and status == 0
        and report["wrong"] == 0
        and report["counted"]
        and report["rss_growth_kib"] < args.rss_growth_mib * 1024
    )
    print(f"logs: {tmp}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

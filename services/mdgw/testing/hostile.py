"""The hostile frame catalogue: input book_builder must refuse, count, and survive.

- :data:`HOSTILE`: frames of a tracked topic, each with one definite defect (wrong types,
  huge numbers, NaN/Infinity, negative or non-numeric sizes, 10 MB strings in checked
  fields, deeply nested JSON, non-UTF-8 bytes, truncated or non-object JSON, unknown
  topics), with the counter that must count it (``malformed`` or ``unsupported``);
- :func:`mutate`: random byte-level mutations (flips, cuts, splices) of a frame;
- :func:`bad_envelopes`: messages that are not version-1 raw envelopes, each for its own
  reason (book_builder counts them as ``bad_envelopes``);
- :data:`KNOWN_CRASHERS` and :func:`hub_raises`: frames that made ``Hub.on_raw`` raise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from mdgw.core import wire
from mdgw.core.hub import Hub
from mdgw.core.wire import EnvelopeKind
from mdgw.testing import oracles
from mdgw.testing.tracked import PUBLISH_DEPTH, TrackedBook

__all__ = [
    "BIG_KINDS",
    "CATEGORY",
    "CATEGORY_CODE",
    "HOSTILE",
    "INGESTOR",
    "KNOWN_CRASHERS",
    "TEN_MB",
    "Factory",
    "bad_envelopes",
    "hub_raises",
    "mutate",
]

CATEGORY = "linear"
CATEGORY_CODE = wire.category_code(CATEGORY)
INGESTOR = b"fuzz-ingestor"
TEN_MB = 10 * 1024 * 1024

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
    header = oracles.encode_raw(
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

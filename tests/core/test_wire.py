"""Tests for mdgw.core.wire: envelope, topics, payloads, control and snapshot framing."""

from __future__ import annotations

import struct
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.core.wire import (
    CATEGORIES,
    CHANNEL_FIELDS,
    CHANNELS,
    END,
    HEADER_SIZE,
    Envelope,
    EnvelopeKind,
    RawEncoder,
    ResyncRequest,
    category_code,
    decode_envelope,
    decode_payload,
    decode_raw,
    decode_resync,
    decode_snapshot_reply,
    decode_snapshot_request,
    encode_bbo,
    encode_book,
    encode_raw,
    encode_resync,
    encode_snapshot_error,
    encode_snapshot_reply,
    encode_snapshot_request,
    encode_status,
    encode_trade,
    parse_topic,
    split_snapshot_request,
    subscription,
    topic,
)

U32 = 2**32 - 1
U64 = 2**64 - 1

ingestor_ids = st.text(min_size=1, max_size=60).filter(lambda s: 1 <= len(s.encode()) <= 255)
symbols = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


# --- raw envelope ----------------------------------------------------------------------------


def test_header_layout_is_24_bytes_little_endian() -> None:
    msg = encode_raw(
        EnvelopeKind.CONN_DOWN,
        ingestor=b"ing",
        category=category_code("inverse"),
        conn_id=0x01020304,
        seq=0x05,
        recv_ns=0x06,
        frame=b"{}",
    )
    assert HEADER_SIZE == 24
    assert msg[:4] == bytes([1, 2, 2, 3])  # version, kind, category, id_len
    assert msg[4:8] == bytes([4, 3, 2, 1])  # conn_id u32 LE
    assert msg[8:16] == (5).to_bytes(8, "little")
    assert msg[16:24] == (6).to_bytes(8, "little")
    assert msg[24:] == b"ing{}"


header_fields = st.fixed_dictionaries(
    {
        "ingestor": ingestor_ids,
        "category": st.sampled_from(CATEGORIES),
        "conn_id": st.integers(0, U32),
        "seq": st.integers(0, U64),
        "recv_ns": st.integers(0, U64),
        "frame": st.binary(max_size=2000),
    }
)


@given(kind=st.sampled_from(list(EnvelopeKind)), f=header_fields)
def test_raw_round_trip(kind: EnvelopeKind, f: dict[str, Any]) -> None:
    msg = encode_raw(
        kind,
        ingestor=f["ingestor"].encode(),
        category=category_code(f["category"]),
        conn_id=f["conn_id"],
        seq=f["seq"],
        recv_ns=f["recv_ns"],
        frame=f["frame"],
    )
    expected = (kind, f["ingestor"], f["category"], f["conn_id"], f["seq"], f["recv_ns"])
    assert decode_raw(msg) == (*expected, f["frame"])
    assert decode_envelope(msg) == Envelope(*expected, f["frame"])
    assert type(decode_envelope(msg).kind) is EnvelopeKind


@given(f=header_fields)
def test_raw_encoder_matches_encode_raw(f: dict[str, Any]) -> None:
    enc = RawEncoder(f["ingestor"], f["category"])
    conn_id, seq, recv_ns, frame = f["conn_id"], f["seq"], f["recv_ns"], f["frame"]
    common = {"ingestor": f["ingestor"].encode(), "category": category_code(f["category"])}
    assert enc.data(conn_id, seq, recv_ns, frame) == encode_raw(
        EnvelopeKind.DATA, conn_id=conn_id, seq=seq, recv_ns=recv_ns, frame=frame, **common
    )
    assert enc.conn_up(conn_id, recv_ns) == encode_raw(
        EnvelopeKind.CONN_UP, conn_id=conn_id, seq=0, recv_ns=recv_ns, **common
    )
    assert enc.conn_down(conn_id, seq, recv_ns) == encode_raw(
        EnvelopeKind.CONN_DOWN, conn_id=conn_id, seq=seq, recv_ns=recv_ns, **common
    )
    assert enc.heartbeat(recv_ns) == encode_raw(
        EnvelopeKind.HEARTBEAT, conn_id=0, seq=0, recv_ns=recv_ns, **common
    )


@given(st.binary(max_size=200))
def test_decode_raw_random_bytes_raises_only_wire_error(data: bytes) -> None:
    try:
        decode_raw(data)
    except WireError:
        pass


@given(st.binary(min_size=HEADER_SIZE - 4, max_size=300))
def test_decode_raw_fuzzed_valid_prefix_raises_only_wire_error(tail: bytes) -> None:
    # Start with a plausible version byte so the fuzzer reaches the deeper checks.
    try:
        decode_raw(b"\x01" + tail)
    except WireError:
        pass


def _header(
    version: int = 1, kind: int = 0, category: int = 1, id_len: int = 3, conn: int = 1
) -> bytes:
    return struct.pack("<BBBBIQQ", version, kind, category, id_len, conn, 1, 2)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (b"", "shorter"),
        (_header()[:-1], "shorter"),
        (_header(version=2) + b"ing", "version"),
        (_header(kind=4) + b"ing", "kind"),
        (_header(category=4) + b"ing", "category"),
        (_header(id_len=0), "empty ingestor"),
        (_header(id_len=10) + b"ing", "truncated"),
        (_header() + b"\xff\xfe\xfd", "UTF-8"),
    ],
)
def test_decode_raw_rejects(msg: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode_raw(msg)


def test_decode_raw_returns_plain_ints_comparable_with_kinds() -> None:
    msg = RawEncoder("a", "spot").heartbeat(5)
    kind, ingestor, category, conn_id, seq, recv_ns, frame = decode_raw(msg)
    assert kind == EnvelopeKind.HEARTBEAT
    assert (ingestor, category, conn_id, seq, recv_ns, frame) == ("a", "spot", 0, 0, 5, b"")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": 9},
        {"category": 4},
        {"ingestor": b""},
        {"ingestor": b"x" * 256},
        {"conn_id": U32 + 1},
        {"seq": U64 + 1},
        {"seq": -1},
        {"recv_ns": U64 + 1},
    ],
)
def test_encode_raw_rejects_out_of_range(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "ingestor": b"i",
        "category": 0,
        "conn_id": 1,
        "seq": 1,
        "recv_ns": 1,
    }
    args.update(kwargs)
    kind = args.pop("kind", 0)
    with pytest.raises(WireError):
        encode_raw(kind, **args)


def test_raw_encoder_rejects_bad_construction_and_fields() -> None:
    with pytest.raises(WireError):
        RawEncoder("", "spot")
    with pytest.raises(WireError):
        RawEncoder("x" * 256, "spot")
    with pytest.raises(WireError):
        RawEncoder("i", "spread")
    with pytest.raises(WireError):
        RawEncoder("i", "spot").data(1, U64 + 1, 0, b"")


def test_category_codes() -> None:
    assert [category_code(c) for c in CATEGORIES] == [0, 1, 2, 3]
    with pytest.raises(WireError):
        category_code("spread")


# --- topics ----------------------------------------------------------------------------------


def test_topic_has_terminator() -> None:
    assert topic("book", "inverse", "BTCUSD") == b"book.inverse.BTCUSD."
    assert topic("status", "linear", "BTC-26DEC25") == b"status.linear.BTC-26DEC25."


@pytest.mark.parametrize(
    ("channel", "category", "symbol"),
    [
        ("books", "linear", "BTCUSDT"),
        ("book", "spread", "BTCUSDT"),
        ("book", "linear", ""),
        ("book", "linear", "BTC.USDT"),
        ("book", "linear", "BTC USDT"),
        ("book", "linear", "X" * 65),
    ],
)
def test_topic_rejects(channel: str, category: str, symbol: str) -> None:
    with pytest.raises(WireError):
        topic(channel, category, symbol)


@pytest.mark.parametrize(
    ("spec", "prefix"),
    [
        ("book.inverse.BTCUSD", b"book.inverse.BTCUSD."),
        ("book.inverse.BTCUSD.", b"book.inverse.BTCUSD."),
        ("book.inverse", b"book.inverse."),
        ("book.inverse.", b"book.inverse."),
        ("book", b"book."),
        ("book.", b"book."),
        ("", b""),
    ],
)
def test_subscription(spec: str, prefix: bytes) -> None:
    assert subscription(spec) == prefix


@pytest.mark.parametrize(
    "spec",
    [
        ".",
        "books",
        "bo",
        "book.options",
        "book..BTCUSD",
        "book.inverse..",
        "book.inverse.BTC USD",
        "book.inverse.BTCUSD.extra",
        " book",
    ],
)
def test_subscription_rejects(spec: str) -> None:
    with pytest.raises(WireError):
        subscription(spec)


def test_symbol_subscription_does_not_match_longer_symbol() -> None:
    btcusd = topic("book", "inverse", "BTCUSD")
    btcusdh26 = topic("book", "inverse", "BTCUSDH26")
    exact = subscription("book.inverse.BTCUSD")
    # ZeroMQ SUB filtering is a plain byte-prefix match.
    assert btcusd.startswith(exact)
    assert not btcusdh26.startswith(exact)
    assert btcusdh26.startswith(subscription("book.inverse.BTCUSDH26"))
    for broad in ("book.inverse", "book", ""):
        assert btcusd.startswith(subscription(broad))
        assert btcusdh26.startswith(subscription(broad))
    assert not btcusd.startswith(subscription("bbo"))
    assert not btcusd.startswith(subscription("book.linear"))


@given(
    channel=st.sampled_from(CHANNELS),
    category=st.sampled_from(CATEGORIES),
    a=symbols,
    b=symbols,
)
def test_exact_subscription_matches_only_its_symbol(
    channel: str, category: str, a: str, b: str
) -> None:
    assert parse_topic(topic(channel, category, a)) == (channel, category, a)
    matches = topic(channel, category, b).startswith(subscription(f"{channel}.{category}.{a}"))
    assert matches == (a == b)


@pytest.mark.parametrize(
    "raw",
    [
        b"book.inverse.BTCUSD",
        b"book.inverse.",
        b"book.inverse.BTCUSD.X.",
        b"nope.inverse.BTCUSD.",
        b"book.spread.BTCUSD.",
        b"book.inverse.BTC$.",
        b"book.inverse.\xffBTC.",
        b"",
    ],
)
def test_parse_topic_rejects(raw: bytes) -> None:
    with pytest.raises(WireError):
        parse_topic(raw)


# --- payloads --------------------------------------------------------------------------------

COMMON = {"channel", "exchange", "category", "symbol", "seq", "pub_ns"}


def _book(**over: Any) -> bytes:
    args: dict[str, Any] = {
        "seq": 7,
        "pub_ns": 1_700_000_000_000_000_100,
        "recv_ns": 1_700_000_000_000_000_000,
        "u": 123,
        "ts": 1_700_000_000_000,
        "cts": 1_699_999_999_999,
        "depth": 25,
        "bids": [("65000.5", "1.2"), ("65000", "0.5")],
        "asks": [("65001", "3")],
    }
    args.update(over)
    return encode_book("linear", "BTCUSDT", **args)


def _bbo() -> bytes:
    return encode_bbo(
        "linear",
        "BTCUSDT",
        seq=3,
        pub_ns=2,
        recv_ns=1,
        u=123,
        ts=1_700_000_000_000,
        bid="65000.5",
        bid_size="1.2",
        ask="65001",
        ask_size="3",
    )


def test_book_payload_fields_and_values() -> None:
    payload = orjson.loads(_book())
    assert set(payload) == COMMON | {"recv_ns", "u", "ts", "cts", "depth", "bids", "asks"}
    assert set(payload) == CHANNEL_FIELDS["book"]
    assert payload["channel"] == "book"
    assert payload["exchange"] == "bybit"
    assert payload["bids"] == [["65000.5", "1.2"], ["65000", "0.5"]]
    assert payload["asks"] == [["65001", "3"]]
    assert payload["seq"] == 7
    assert decode_payload(_book()) == payload


def test_book_accepts_other_level_sequences() -> None:
    class Levels(tuple[tuple[str, str], ...]):
        pass

    payload = orjson.loads(_book(bids=Levels([("1", "2")]), asks=()))
    assert payload["bids"] == [["1", "2"]]
    assert payload["asks"] == []


def test_book_rejects_unencodable_levels() -> None:
    with pytest.raises(WireError):
        _book(bids={"1": "2"}.items())


def test_bbo_payload_fields() -> None:
    payload = orjson.loads(_bbo())
    assert set(payload) == COMMON | {"recv_ns", "u", "ts", "bid", "bid_size", "ask", "ask_size"}
    assert set(payload) == CHANNEL_FIELDS["bbo"]
    assert (payload["bid"], payload["ask_size"]) == ("65000.5", "3")


def test_trade_payload_fields() -> None:
    data = encode_trade(
        "spot",
        "ETHUSDT",
        seq=1,
        pub_ns=2,
        recv_ns=1,
        trade_id="2290000000012345",
        price="3000.1",
        size="0.01",
        side="sell",
        ts=1_700_000_000_000,
        block=False,
    )
    payload = orjson.loads(data)
    assert set(payload) == COMMON | {"recv_ns", "id", "price", "size", "side", "ts", "block"}
    assert set(payload) == CHANNEL_FIELDS["trade"]
    assert payload["block"] is False
    assert payload["side"] == "sell"


def test_trade_rejects_bad_side() -> None:
    with pytest.raises(WireError):
        encode_trade(
            "spot",
            "ETHUSDT",
            seq=1,
            pub_ns=2,
            recv_ns=1,
            trade_id="1",
            price="1",
            size="1",
            side="Buy",
            ts=1,
            block=False,
        )


def test_status_payload_fields() -> None:
    without = orjson.loads(
        encode_status("inverse", "BTCUSD", seq=9, pub_ns=5, state="stale", reason="silent")
    )
    assert set(without) == COMMON | {"state", "reason"}
    assert set(without) == CHANNEL_FIELDS["status"]
    with_recv = orjson.loads(
        encode_status(
            "inverse", "BTCUSD", seq=9, pub_ns=5, state="resyncing", reason="gap", recv_ns=4
        )
    )
    assert set(with_recv) == COMMON | {"state", "reason", "recv_ns"}
    assert decode_payload(orjson.dumps(with_recv))["recv_ns"] == 4
    with pytest.raises(WireError):
        encode_status("inverse", "BTCUSD", seq=9, pub_ns=5, state="dead", reason="")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"channel": "nope"}',
        b'{"channel": ["book"]}',
        b'{"channel": "book", "exchange": "bybit"}',
        b"\xff\xfe",
    ],
)
def test_decode_payload_rejects(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_payload(data)


def test_decode_payload_rejects_unknown_category() -> None:
    payload = orjson.loads(_bbo())
    payload["category"] = "spread"
    with pytest.raises(WireError, match="category"):
        decode_payload(orjson.dumps(payload))


def test_decode_payload_allows_extra_fields() -> None:
    payload = orjson.loads(_bbo())
    payload["future_field"] = 1
    assert decode_payload(orjson.dumps(payload))["future_field"] == 1


@given(st.binary(max_size=200))
def test_decode_payload_random_bytes_raises_only_wire_error(data: bytes) -> None:
    try:
        decode_payload(data)
    except WireError:
        pass


# --- control ---------------------------------------------------------------------------------


def test_resync_round_trip() -> None:
    frames = encode_resync("linear", "orderbook.50.BTCUSDT", "u gap 10 -> 12")
    assert frames[0] == b"resync"
    assert orjson.loads(frames[1]) == {
        "category": "linear",
        "topic": "orderbook.50.BTCUSDT",
        "reason": "u gap 10 -> 12",
        "reconnect": False,
    }
    assert decode_resync(frames) == ResyncRequest(
        "linear", "orderbook.50.BTCUSDT", "u gap 10 -> 12"
    )
    escalated = encode_resync("spot", "orderbook.1.X", "no snapshot", reconnect=True)
    assert decode_resync(escalated).reconnect is True
    # Older builders send no "reconnect": it means a plain resubscribe.
    legacy = [b"resync", b'{"category":"spot","topic":"orderbook.1.X","reason":"r"}']
    assert decode_resync(legacy).reconnect is False
    with pytest.raises(WireError):
        decode_resync([b"resync", b'{"category":"spot","topic":"t","reason":"r","reconnect":1}'])


def _resync_body(**over: object) -> bytes:
    body: dict[str, object] = {"category": "spot", "topic": "orderbook.1.BTCUSDT", "reason": "x"}
    body.update(over)
    return orjson.dumps(body)


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"resync"],
        [b"resync", _resync_body(), b"extra"],
        [b"other", _resync_body()],
        [b"resync", b"{bad json"],
        [b"resync", b"[]"],
        [b"resync", _resync_body(category="spread")],
        [b"resync", _resync_body(category=None)],
        [b"resync", _resync_body(topic="")],
        [b"resync", _resync_body(topic="x" * 257)],
        [b"resync", _resync_body(topic="orderbook.1.BTC USDT")],
        [b"resync", _resync_body(topic=5)],
        [b"resync", _resync_body(reason=None)],
    ],
)
def test_decode_resync_rejects(frames: list[bytes]) -> None:
    with pytest.raises(WireError):
        decode_resync(frames)


def test_encode_resync_rejects() -> None:
    with pytest.raises(WireError):
        encode_resync("spread", "orderbook.1.BTCUSDT", "")
    with pytest.raises(WireError):
        encode_resync("spot", "x" * 257, "")


@given(st.lists(st.binary(max_size=64), max_size=3))
def test_decode_resync_random_frames_raise_only_wire_error(frames: list[bytes]) -> None:
    try:
        decode_resync(frames)
    except WireError:
        pass


# --- snapshot service ------------------------------------------------------------------------


def test_snapshot_request_normalizes_like_subscription() -> None:
    assert encode_snapshot_request("book.inverse.BTCUSD") == b"book.inverse.BTCUSD."
    assert decode_snapshot_request(b"book.inverse.BTCUSD") == b"book.inverse.BTCUSD."
    assert decode_snapshot_request(b"book.inverse.BTCUSD.") == b"book.inverse.BTCUSD."
    assert decode_snapshot_request(b"bbo") == b"bbo."
    assert decode_snapshot_request(b"") == b""


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"book." + b"x" * 252, "max 256"),
        (b"book.\xff", "UTF-8"),
        (b"book\n", "control"),
        (b"book\x00", "control"),
        (b"nope", "channel"),
    ],
)
def test_decode_snapshot_request_rejects(frame: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode_snapshot_request(frame)


@given(st.binary(max_size=300))
def test_decode_snapshot_request_random_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        decode_snapshot_request(data)
    except WireError:
        pass


def test_split_snapshot_request() -> None:
    assert split_snapshot_request([b"id", b"", b"book."]) == ([b"id", b""], b"book.")
    assert split_snapshot_request([b"id", b"book."]) == ([b"id"], b"book.")
    with pytest.raises(WireError):
        split_snapshot_request([b"book."])


def _snapshot_items() -> list[tuple[bytes, bytes]]:
    return [
        (topic("book", "linear", "BTCUSDT"), _book()),
        (topic("bbo", "linear", "BTCUSDT"), _bbo()),
    ]


def test_snapshot_reply_round_trip() -> None:
    items = _snapshot_items()
    frames = encode_snapshot_reply(items, b"")
    assert len(frames) == 6
    assert frames[-2] == END
    assert orjson.loads(frames[-1]) == {"count": 2, "prefix": ""}
    decoded = decode_snapshot_reply(frames)
    assert [t for t, _ in decoded] == [t for t, _ in items]
    assert [p for _, p in decoded] == [orjson.loads(p) for _, p in items]


def test_empty_snapshot_reply_round_trip() -> None:
    frames = encode_snapshot_reply([], b"book.inverse.BTCUSD.")
    assert frames == [END, b'{"count":0,"prefix":"book.inverse.BTCUSD."}']
    assert decode_snapshot_reply(frames) == []


def test_snapshot_error_reply_raises_with_reason() -> None:
    frames = encode_snapshot_error("unknown channel 'nope'")
    assert frames[0] == b"ERROR"
    with pytest.raises(WireError, match="refused: unknown channel 'nope'"):
        decode_snapshot_reply(frames)
    with pytest.raises(WireError):
        decode_snapshot_reply([b"ERROR", b"not json"])


def _end(count: object = 2, prefix: object = "") -> bytes:
    return orjson.dumps({"count": count, "prefix": prefix})


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "frames"),
        ([b"END"], "frames"),
        ([*sum(_snapshot_items(), ())[:3], b"END", _end()], "frames"),
        ([*sum(_snapshot_items(), ()), b"FIN", _end()], "END marker"),
        ([*sum(_snapshot_items(), ()), b"END", b"nope"], "JSON"),
        ([*sum(_snapshot_items(), ()), b"END", _end(count=3)], "says 3"),
        ([*sum(_snapshot_items(), ()), b"END", _end(count="2")], "integer count"),
        ([*sum(_snapshot_items(), ()), b"END", _end(count=True)], "integer count"),
        ([*sum(_snapshot_items(), ()), b"END", _end(prefix=None)], "string prefix"),
        ([*sum(_snapshot_items(), ()), b"END", _end(prefix="bbo.")], "does not match"),
        ([b"book.linear.BTCUSDT", _book(), b"END", _end(1)], "terminator"),
        ([b"book.linear.ETHUSDT.", _book(), b"END", _end(1)], "another topic"),
        ([b"book.linear.BTCUSDT.", b"{}", b"END", _end(1)], "channel"),
    ],
)
def test_decode_snapshot_reply_rejects(frames: list[bytes], reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode_snapshot_reply(frames)


@given(st.lists(st.binary(max_size=64), max_size=6))
def test_decode_snapshot_reply_random_frames_raise_only_wire_error(frames: list[bytes]) -> None:
    try:
        decode_snapshot_reply(frames)
    except WireError:
        pass


def test_all_names_exported_exist() -> None:
    for name in wire.__all__:
        assert hasattr(wire, name), name


@settings(max_examples=200, deadline=None)
@given(
    category=st.sampled_from(CATEGORIES),
    symbol=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    ints=st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=5, max_size=5),
    cts=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
    depth=st.integers(min_value=1, max_value=1000),
    bids=st.lists(
        st.tuples(st.from_regex(r"[0-9.]{1,12}", fullmatch=True), st.just("1")), max_size=4
    ),
    asks=st.lists(
        st.tuples(st.just("2.5"), st.from_regex(r"[0-9.]{1,12}", fullmatch=True)), max_size=4
    ),
)
def test_book_template_makes_the_bytes_encode_book_makes(
    *,
    category: str,
    symbol: str,
    ints: list[int],
    cts: int | None,
    depth: int,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
) -> None:
    """The builder's hot path (template + pre-serialised levels) against the reference."""
    seq, pub_ns, recv_ns, u, ts = ints

    def body(levels: list[tuple[str, str]]) -> str:
        return ",".join(f'["{price}","{size}"]' for price, size in levels)

    fast = (
        wire.book_template(category, symbol)
        % (seq, pub_ns, recv_ns, u, ts, cts or "null", depth, body(bids), body(asks))
    ).encode()
    reference = wire.encode_book(
        category,
        symbol,
        seq=seq,
        pub_ns=pub_ns,
        recv_ns=recv_ns,
        u=u,
        ts=ts,
        cts=cts,
        depth=depth,
        bids=bids,
        asks=asks,
    )
    assert fast == reference
    assert decode_payload(fast)["bids"] == [list(b) for b in bids]


def test_book_template_validates_its_topic() -> None:
    with pytest.raises(WireError):
        wire.book_template("futures", "BTCUSDT")
    with pytest.raises(WireError):
        wire.book_template("linear", 'BTC"USDT')

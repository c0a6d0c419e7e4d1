"""mdgw.core.wire.framing: control messages and the snapshot service."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdgw.core.errors import WireError
from mdgw.core.wire import (
    END,
    ResyncRequest,
    decode_resync,
    decode_snapshot_reply,
    decode_snapshot_request,
    encode_resync,
    encode_snapshot_error,
    encode_snapshot_reply,
    encode_snapshot_request,
    split_snapshot_request,
    topic,
)
from mdgw.testing.samples import sample_bbo, sample_book

U32 = 2**32 - 1
U64 = 2**64 - 1


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
        (topic("book", "linear", "BTCUSDT"), sample_book()),
        (topic("bbo", "linear", "BTCUSDT"), sample_bbo()),
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
        ([b"book.linear.BTCUSDT", sample_book(), b"END", _end(1)], "terminator"),
        ([b"book.linear.ETHUSDT.", sample_book(), b"END", _end(1)], "another topic"),
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

"""Oracles: plain, obviously-right implementations the production code is tested against.

The production paths are built for speed (a header packed once per ingestor, a ``book``
payload rendered from a template, Bybit frames decoded by msgspec into typed structs); these
say the same thing the slow and simple way: envelopes field by field, payloads as dicts
through orjson, Bybit frames through ``orjson.loads`` and a type check per dict key. The
tests require the two to agree, on examples and on generated inputs: the same value, or both
a :class:`~mdgw.core.errors.ParseError` for the same topic (the reasons may be worded
differently).

What the frame decoders are held to is the parsing: JSON types, missing and extra fields,
integer ranges. The rules that follow it are shared, not copied (the level strings in
:func:`mdgw.core.bybit.parse_levels`, a trade's in :func:`mdgw.core.bybit.trade_from`, a
control frame's in :func:`mdgw.core.bybit_control.control_from`, the topic parser); they are
tested on their own.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from mdgw.core.bybit import (
    MAX_TOPIC_LEN,
    BookFrame,
    FullFrame,
    RpiFrame,
    StatusFrame,
    Trade,
    TradeFrame,
    notice_from,
    parse_book_topic,
    parse_levels,
    rpi_from,
    topic_of,
    trade_from,
)
from mdgw.core.bybit_control import Control, ControlFields, control_from
from mdgw.core.bybit_spec import (
    CATEGORIES,
    FULL_TOPIC_PREFIX,
    RPI_TOPIC_PREFIX,
    SYSTEM_STATUS_TOPIC,
)
from mdgw.core.bybit_structs import RpiData, StatusItem, TradeItem
from mdgw.core.errors import ParseError, UnsupportedTopicError, WireError
from mdgw.core.wire.envelope import ENVELOPE_VERSION, EnvelopeKind
from mdgw.core.wire.topics import EXCHANGE, is_topic_symbol

__all__ = ["decode_control", "decode_frame", "encode_book", "encode_raw"]

# The envelope header, spelled out again on purpose (see mdgw.core.wire.envelope).
_HEADER = struct.Struct("<BBBBIQQ")


def encode_raw(
    kind: int,
    *,
    ingestor: bytes,
    category: int,
    conn_id: int,
    seq: int,
    recv_ns: int,
    frame: bytes = b"",
) -> bytes:
    """One raw envelope, every field given: the oracle for :class:`~mdgw.core.wire.RawEncoder`,
    and the way tests and the fuzzer build envelopes field by field."""
    if not 0 <= kind <= max(EnvelopeKind):
        raise WireError(f"unknown envelope kind {kind}")
    if not 0 <= category < len(CATEGORIES):
        raise WireError(f"unknown category code {category}")
    if not ingestor:
        raise WireError("empty ingestor id")
    try:
        header = _HEADER.pack(
            ENVELOPE_VERSION, kind, category, len(ingestor), conn_id, seq, recv_ns
        )
    except struct.error as exc:
        raise WireError(f"envelope field out of range: {exc}") from None
    return header + ingestor + frame


def _to_json_array(obj: object) -> list[object]:
    # orjson serializes list and tuple natively; this catches other sequences of levels.
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes | bytearray):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def encode_book(
    category: str,
    symbol: str,
    *,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    u: int,
    ts: int,
    cts: int | None,
    depth: int,
    bids: Sequence[tuple[str, str]],
    asks: Sequence[tuple[str, str]],
) -> bytes:
    """A ``book`` payload built as a dict and encoded by orjson: the oracle for
    :class:`~mdgw.core.wire.BookTemplate`, which the builder uses instead.

    ``bids`` descending and ``asks`` ascending, ``(price, size)`` strings exactly as Bybit
    sent them. ``cts`` is null when Bybit's frame had none.
    """
    payload = {
        "channel": "book",
        "exchange": EXCHANGE,
        "category": category,
        "symbol": symbol,
        "seq": seq,
        "pub_ns": pub_ns,
        "recv_ns": recv_ns,
        "u": u,
        "ts": ts,
        "cts": cts,
        "depth": depth,
        "bids": bids,
        "asks": asks,
    }
    try:
        return orjson.dumps(payload, default=_to_json_array)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise WireError(f"cannot encode book payload: {exc}") from None


# --------------------------------------------------------------------------- Bybit frames


def decode_frame(frame: bytes | str) -> BookFrame | TradeFrame | RpiFrame | StatusFrame:
    """The reference for :func:`mdgw.core.bybit.decode_frame`: orjson, then dict checks."""
    obj = _loads(frame)
    topic = obj.get("topic")
    if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_LEN:
        raise ParseError("missing or invalid topic")
    if topic.startswith(RPI_TOPIC_PREFIX):
        return _decode_rpi(obj, topic)
    if topic.startswith("orderbook."):
        return _decode_book(obj, topic)
    if topic.startswith("publicTrade."):
        return _decode_trades(obj, topic)
    if topic == SYSTEM_STATUS_TOPIC:
        return _decode_status(obj, topic)
    raise UnsupportedTopicError("unsupported topic", topic)


_OPTION_NAMES = {"mP": "mark_price", "iP": "index_price", "mIv": "mark_iv", "iv": "iv"}


def _decode_rpi(obj: dict[str, Any], topic: str) -> RpiFrame:
    kind = obj.get("type")
    if type(kind) is not str:
        raise ParseError("type must be a string", topic)
    data = obj.get("data")
    if type(data) is not dict:
        raise ParseError("data is not an object", topic)
    if type(data.get("s")) is not str:
        raise ParseError("data.s must be a string", topic)
    sides = []
    for name in ("b", "a"):
        levels = data.get(name)
        if type(levels) is not list or not all(
            type(level) is list and all(type(x) is str for x in level) for level in levels
        ):
            raise ParseError(f"data.{name} is not a list of string lists", topic)
        sides.append(levels)
    fields = RpiData(
        s=data["s"],
        b=sides[0],
        a=sides[1],
        u=_uint(data.get("u"), "data.u", topic),
        seq=_uint(data.get("seq", 0), "data.seq", topic),
    )
    ts = _uint(obj.get("ts"), "ts", topic)
    return rpi_from(kind, fields, ts, _uint(obj.get("cts", 0), "cts", topic), topic)


def _decode_status(obj: dict[str, Any], topic: str) -> StatusFrame:
    data = obj.get("data")
    if not isinstance(data, list):
        raise ParseError("data is not a list", topic)
    ts = _uint(obj.get("ts"), "ts", topic)
    notices = []
    for item in data:
        if not isinstance(item, dict):
            raise ParseError("notice is not an object", topic)
        for name in ("id", "title", "state", "href"):
            if name in item and type(item[name]) is not str:
                raise ParseError(f"notice {name} must be a string", topic)
        if "id" not in item:
            raise ParseError("notice id must be a non-empty string", topic)
        for name in ("begin", "end"):
            value = item.get(name)
            if type(value) is not str and type(value) is not int:
                raise ParseError(f"notice {name} must be milliseconds", topic)
        ints = {}
        for name in ("serviceTypes", "product"):
            value = item.get(name, [])
            if type(value) is not list or not all(type(v) is int for v in value):
                raise ParseError(f"notice {name} must be a list of integers", topic)
            ints[name] = value
        fields = StatusItem(
            id=item["id"],
            begin=item["begin"],
            end=item["end"],
            title=item.get("title", ""),
            state=item.get("state", ""),
            href=item.get("href", ""),
            service_types=ints["serviceTypes"],
            product=ints["product"],
            maintain_type=item.get("maintainType", ""),
            env=item.get("env", ""),
        )
        notices.append(notice_from(fields, topic))
    return StatusFrame(topic, ts, notices)


def decode_control(frame: bytes | str) -> Control:
    """The reference for :func:`mdgw.core.bybit_control.decode_control`: orjson's dict."""
    obj = _loads(frame)
    fields = ControlFields(
        topic=obj.get("topic", msgspec.UNSET),
        **{name: obj.get(name) for name in ControlFields.__struct_fields__ if name != "topic"},
    )
    return control_from(fields)


def _decode_book(obj: dict[str, Any], topic: str) -> BookFrame:
    parsed = parse_book_topic(topic)
    if parsed is None:
        raise ParseError("malformed orderbook topic", topic)
    kind = obj.get("type")
    if kind not in ("delta", "snapshot"):
        raise ParseError(f"unknown book frame type {str(kind)[:40]!r}", topic)
    data = obj.get("data")
    if type(data) is not dict:
        raise ParseError("data is not an object", topic)
    if data.get("s") != parsed.symbol:
        raise ParseError(f"data.s {str(data.get('s'))[:40]!r} does not match the topic", topic)
    frame_type = FullFrame if topic.startswith(FULL_TOPIC_PREFIX) else BookFrame
    return frame_type(
        topic,
        parsed.symbol,
        parsed.depth,
        kind == "snapshot",
        _uint(data.get("u"), "data.u", topic),
        _uint(data.get("seq", 0), "data.seq", topic),
        _uint(obj.get("ts"), "ts", topic),
        _uint(obj.get("cts", 0), "cts", topic),
        parse_levels(data.get("b"), "data.b", topic),
        parse_levels(data.get("a"), "data.a", topic),
    )


def _decode_trades(obj: dict[str, Any], topic: str) -> TradeFrame:
    symbol = topic[len("publicTrade.") :]
    if not is_topic_symbol(symbol):
        raise ParseError("malformed publicTrade topic", topic)
    data = obj.get("data")
    if not isinstance(data, list):
        raise ParseError("data is not a list", topic)
    trades: list[Trade] = []
    for item in data:
        # The JSON types, checked by hand as a dict decoder must; trade_from checks the rest.
        if not isinstance(item, dict):
            raise ParseError("trade is not an object", topic)
        if any(type(item.get(key)) is not str for key in ("s", "S", "i", "p", "v")):
            raise ParseError("trade s, S, i, p and v must be strings", topic)
        block = item.get("BT", False)
        if type(block) is not bool:
            raise ParseError("trade BT must be a boolean", topic)
        seq = item.get("seq")
        rpi = item.get("RPI", False)
        if type(rpi) is not bool:
            raise ParseError("trade RPI must be a boolean", topic)
        option = {}
        for key in ("mP", "iP", "mIv", "iv"):
            value = item.get(key)
            if value is not None and type(value) is not str:
                raise ParseError(f"trade {key} must be a string", topic)
            option[_OPTION_NAMES[key]] = value
        fields = TradeItem(
            T=_uint(item.get("T"), "T", topic),
            s=item["s"],
            S=item["S"],
            v=item["v"],
            p=item["p"],
            i=item["i"],
            BT=block,
            seq=None if seq is None else _uint(seq, "seq", topic),
            RPI=rpi,
            **option,
        )
        trades.append(trade_from(fields, symbol, topic))
    return TradeFrame(
        topic=topic, symbol=symbol, ts=_uint(obj.get("ts"), "ts", topic), trades=trades
    )


def _loads(frame: bytes | str) -> dict[str, Any]:
    try:
        obj = orjson.loads(frame)
    except (orjson.JSONDecodeError, TypeError) as exc:
        guess = topic_of(frame) if isinstance(frame, bytes) else None
        raise ParseError(f"invalid JSON: {str(exc)[:80]}", guess) from None
    if not isinstance(obj, dict):
        raise ParseError("frame is not a JSON object")
    return obj


def _uint(value: object, field: str, topic: str) -> int:
    if type(value) is not int or value < 0:
        raise ParseError(f"{field} must be a non-negative integer, got {str(value)[:40]!r}", topic)
    return value

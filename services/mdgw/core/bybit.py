"""Bybit v5 public data frames: ``orderbook.{depth}.{symbol}`` and ``publicTrade.{symbol}``.

Pure functions over bytes. Every decoder raises :class:`~mdgw.core.errors.ParseError`
on bad input and nothing else (fuzzed in tests/core/test_bybit.py).

Protocol facts used here (see ../shared/reference/bybit-v5-public.md):

- Data frames carry ``topic``, first on every category: the decoder is chosen by the
  frame's first bytes, and a frame whose topic comes later is parsed for it.
- ``u`` and ``seq`` are unsigned 64-bit; ``cts`` is missing in frames older than Dec 2023,
  ``seq`` in frames before the cross sequence was added.
- Prices and sizes are strings and stay exactly as sent. Ordering uses
  ``float(price)``: every decimal of at most 15 significant digits maps to a distinct
  double and the mapping is monotonic, so the float order is the decimal order.
  Longer prices are rejected rather than silently merged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final, NamedTuple

import msgspec

from mdgw.core.bybit_structs import BookMsg, TopicOnly, TradeItem, TradeMsg
from mdgw.core.errors import ParseError, UnsupportedTopicError
from mdgw.core.wire.topics import is_topic_symbol

MAX_TOPIC_LEN: Final = 256
_MAX_SIGNIFICANT_DIGITS: Final = 15
_MAX_NUMBER_LEN: Final = 40  # longest price or size string accepted

_TOPIC_KEY: Final = b'"topic":"'


Level = tuple[float, str, str, float]
"""One book level from a frame: (price key, price string, size string, size as float).

A size of 0 deletes the level. The strings are exactly what Bybit sent."""


@dataclass(slots=True)
class BookFrame:
    """An ``orderbook.{depth}.{symbol}`` frame."""

    topic: str
    symbol: str
    depth: int
    snapshot: bool  # False: delta
    u: int  # update id: +1 per message of this topic; 1 after a Bybit restart
    seq: int  # cross sequence: monotonic across topics, not contiguous; 0 if absent
    ts: int  # system time (ms)
    cts: int  # matching-engine time (ms); 0 in frames older than Dec 2023
    bids: list[Level]
    asks: list[Level]


@dataclass(slots=True, frozen=True)
class Trade:
    """One public trade. ``side`` is the taker side, lower case."""

    id: str
    price: str
    size: str
    side: str  # "buy" | "sell"
    ts: int  # fill time (ms)
    block: bool
    seq: int  # 0 if absent (frames before Aug 2025)


@dataclass(slots=True)
class TradeFrame:
    """A ``publicTrade.{symbol}`` frame: a batch of trades in Bybit's order."""

    topic: str
    symbol: str
    ts: int
    trades: list[Trade]


# --------------------------------------------------------------------------- topics


def orderbook_topic(depth: int, symbol: str) -> str:
    return f"orderbook.{depth}.{symbol}"


def trade_topic(symbol: str) -> str:
    return f"publicTrade.{symbol}"


def topic_of(frame: bytes) -> str | None:
    """Best-effort topic of a frame that may be malformed; None when none is visible.

    Used to attribute a broken frame to one book, so only that book resyncs.
    """
    start = frame.find(_TOPIC_KEY, 0, 64)
    if start < 0:
        return None
    start += len(_TOPIC_KEY)
    end = frame.find(b'"', start, start + MAX_TOPIC_LEN + 1)
    if end < 0:
        return None
    topic = frame[start:end].decode("ascii", "replace")
    if not topic or not topic.isprintable() or "\\" in topic or "\ufffd" in topic:
        return None
    return topic


# ------------------------------------------------------------------------ decode data
# One decoder per message type: msgspec decodes a frame straight into the typed structs
# below, checking JSON types in C and skipping the fields the gateway does not read; the
# checks after it are the rules msgspec cannot express (the topic's shape, the symbol
# matching it, decimal strings, ranges). Integers are checked against 2**64 - 1 by hand:
# msgspec's bounds stop at int64, and Bybit's ids are unsigned. One consequence of skipping:
# invalid UTF-8 inside a field the gateway does not read does not make a frame malformed.
# The orjson-based reference decoder in mdgw.testing.oracles is what the tests hold this to.
# The structs live in core/bybit_structs.py, which is never compiled (see there).


_decode_book_msg = msgspec.json.Decoder(BookMsg).decode
_decode_trade_msg = msgspec.json.Decoder(TradeMsg).decode
_decode_topic_only = msgspec.json.Decoder(TopicOnly).decode
_BOOK_PREFIX: Final = b'{"topic":"orderbook.'
_TRADE_PREFIX: Final = b'{"topic":"publicTrade.'
_U64_MAX: Final = 2**64 - 1


def decode_frame(frame: bytes | str) -> BookFrame | TradeFrame:
    """Decode an ``orderbook.*`` or ``publicTrade.*`` frame; ParseError otherwise."""
    if type(frame) is not bytes:
        frame = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else b""
    # Bybit puts the topic first: its first bytes choose the decoder without parsing.
    if frame.startswith(_BOOK_PREFIX):
        return _decode_book(frame)
    if frame.startswith(_TRADE_PREFIX):
        return _decode_trades(frame)
    topic = _topic(frame)
    if topic.startswith("orderbook."):
        return _decode_book(frame)
    if topic.startswith("publicTrade."):
        return _decode_trades(frame)
    raise UnsupportedTopicError("unsupported topic", topic)


def _topic(frame: bytes) -> str:
    """The topic of a frame whose first bytes did not name a known one."""
    try:
        topic = _decode_topic_only(frame).topic
    except msgspec.ValidationError:
        raise ParseError("frame is not a JSON object") from None
    except msgspec.DecodeError as exc:
        raise ParseError(f"invalid JSON: {str(exc)[:80]}", topic_of(frame)) from None
    if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_LEN:
        raise ParseError("missing or invalid topic")
    return topic


def _invalid(frame: bytes, exc: msgspec.DecodeError) -> ParseError:
    """The ParseError for a frame msgspec refused, in the words of the field it names."""
    if not isinstance(exc, msgspec.ValidationError):
        return ParseError(f"invalid JSON: {str(exc)[:80]}", topic_of(frame))
    try:
        topic = _decode_topic_only(frame).topic
    except msgspec.DecodeError:
        topic = None
    if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_LEN:
        return ParseError("missing or invalid topic")
    # msgspec says "Expected `int`, got `str` - at `$.data.u`".
    message, _, where = str(exc).partition(" - at `$")
    path = where.rstrip("`").lstrip(".") or "frame"
    message = message.replace("`", "")
    if path.startswith(("data.b[", "data.a[")):
        return ParseError(f"{path[:6]}: bad level at {path[6:]} ({message})", topic)
    if message.startswith("Expected array"):
        return ParseError(f"{path} is not a list", topic)
    if message.startswith("Expected object"):
        return ParseError(f"{path} is not an object", topic)
    return ParseError(f"{path}: {message}"[:120], topic)


class OrderbookTopic(NamedTuple):
    """A parsed Bybit ``orderbook.{depth}.{symbol}`` topic."""

    symbol: str
    depth: int


@functools.lru_cache(maxsize=16384)
def parse_orderbook_topic(topic: str) -> OrderbookTopic | None:
    """``"orderbook.50.BTCUSDT"`` -> ``OrderbookTopic("BTCUSDT", 50)``; None if malformed.

    The symbol must fit a gateway topic (:func:`mdgw.core.wire.is_topic_symbol`). Cached:
    topics repeat.
    """
    parts = topic.split(".")
    if len(parts) != 3 or parts[0] != "orderbook":
        return None
    depth_text, symbol = parts[1], parts[2]
    if not depth_text.isascii() or not depth_text.isdigit() or len(depth_text) > 5:
        return None
    depth = int(depth_text)
    if depth < 1 or not is_topic_symbol(symbol):
        return None
    return OrderbookTopic(symbol, depth)


def _decode_book(frame: bytes) -> BookFrame:
    # The book builder's hot path: one msgspec call, then inline checks.
    try:
        msg = _decode_book_msg(frame)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise _invalid(frame, exc) from None
    topic = msg.topic
    parsed = parse_orderbook_topic(topic) if len(topic) <= MAX_TOPIC_LEN else None
    if parsed is None:
        if not topic or len(topic) > MAX_TOPIC_LEN:
            raise ParseError("missing or invalid topic")
        raise ParseError("malformed orderbook topic", topic)
    symbol = parsed.symbol
    kind = msg.type
    if kind == "delta":
        snapshot = False
    elif kind == "snapshot":
        snapshot = True
    else:
        raise ParseError(f"unknown book frame type {kind[:40]!r}", topic)
    data = msg.data
    if data.s != symbol:
        raise ParseError(f"data.s {data.s[:40]!r} does not match the topic", topic)
    u, seq, ts, cts = data.u, data.seq, msg.ts, msg.cts
    if not 0 <= u <= _U64_MAX:
        raise ParseError(f"data.u must be a non-negative integer, got {str(u)[:40]!r}", topic)
    if not 0 <= seq <= _U64_MAX:
        raise ParseError(f"data.seq must be a non-negative integer, got {str(seq)[:40]!r}", topic)
    if not 0 <= ts <= _U64_MAX:
        raise ParseError(f"ts must be a non-negative integer, got {str(ts)[:40]!r}", topic)
    if not 0 <= cts <= _U64_MAX:
        raise ParseError(f"cts must be a non-negative integer, got {str(cts)[:40]!r}", topic)
    return BookFrame(
        topic,
        symbol,
        parsed.depth,
        snapshot,
        u,
        seq,
        ts,
        cts,
        parse_levels(data.b, "data.b", topic),
        parse_levels(data.a, "data.a", topic),
    )


_DECIMAL_CHARS: Final = "0123456789."


def parse_levels(raw: object, field: str, topic: str) -> list[Level]:
    """``[[price, size], ...]`` as :data:`Level` s; ParseError naming ``field`` otherwise.

    Prices and sizes must be plain decimal strings; a price must be positive and have at
    most 15 significant digits (see the module docstring).
    """
    if type(raw) is not list:
        raise ParseError(f"{field} is not a list", topic)
    out: list[Level] = []
    append = out.append
    level: object = None
    try:
        for level in raw:
            if type(level) is not list:
                raise TypeError
            price, size = level  # exactly [price, size]
            # str.strip() with the allowed characters leaves "" only when every
            # character is a digit or a dot: this rejects what float() would otherwise
            # accept ("nan", "inf", "1e5", "1_000", " 1", "-1"). float() rejects the
            # rest ("", ".", "1.2.3").
            if price.strip(_DECIMAL_CHARS) or size.strip(_DECIMAL_CHARS):
                raise ValueError
            if len(price) > _MAX_NUMBER_LEN or len(size) > _MAX_NUMBER_LEN:
                raise ValueError
            key = float(price)
            if key <= 0.0:
                raise ValueError
            if len(price) > _MAX_SIGNIFICANT_DIGITS + 1 and (
                len(price.replace(".", "").strip("0")) > _MAX_SIGNIFICANT_DIGITS
            ):
                raise ParseError(f"{field}: price {price[:40]!r} has too many digits", topic)
            append((key, price, size, float(size)))
    except (TypeError, ValueError, AttributeError):
        raise ParseError(f"{field}: bad level {str(level)[:60]}", topic) from None
    return out


def _decode_trades(frame: bytes) -> TradeFrame:
    try:
        msg = _decode_trade_msg(frame)
    except msgspec.DecodeError as exc:
        raise _invalid(frame, exc) from None
    topic = msg.topic
    if not topic or len(topic) > MAX_TOPIC_LEN:
        raise ParseError("missing or invalid topic")
    symbol = topic[len("publicTrade.") :]
    if not is_topic_symbol(symbol):
        raise ParseError("malformed publicTrade topic", topic)
    trades = [trade_from(item, symbol, topic) for item in msg.data]
    ts = msg.ts
    if not 0 <= ts <= _U64_MAX:
        raise ParseError(f"ts must be a non-negative integer, got {str(ts)[:40]!r}", topic)
    return TradeFrame(topic, symbol, ts, trades)


def trade_from(item: TradeItem, symbol: str, topic: str) -> Trade:
    """One trade of a ``publicTrade`` frame, checked: Bybit's rules beyond the JSON types."""
    if item.s != symbol:
        raise ParseError(f"trade symbol {item.s!r} does not match the topic", topic)
    side = item.S
    if side == "Buy":
        side_name = "buy"
    elif side == "Sell":
        side_name = "sell"
    else:
        raise ParseError(f"trade side {side!r} is not Buy/Sell", topic)
    trade_id, price, size = item.i, item.p, item.v
    if not trade_id or len(trade_id) > 128:
        raise ParseError("trade id must be a non-empty string", topic)
    if not is_decimal(price) or float(price) <= 0.0:
        raise ParseError(f"bad trade price {price[:40]!r}", topic)
    if not is_decimal(size):
        raise ParseError(f"bad trade size {size[:40]!r}", topic)
    fill_ts, seq = item.T, item.seq
    if not 0 <= fill_ts <= _U64_MAX:
        raise ParseError(f"T must be a non-negative integer, got {str(fill_ts)[:40]!r}", topic)
    if seq is None:
        seq = 0
    elif not 0 <= seq <= _U64_MAX:
        raise ParseError(f"seq must be a non-negative integer, got {str(seq)[:40]!r}", topic)
    return Trade(trade_id, price, size, side_name, fill_ts, item.BT, seq)


# ------------------------------------------------------------------------ helpers


def is_decimal(text: str) -> bool:
    """A plain unsigned decimal (``"65000"``, ``"0.001"``, ``"65000.50"``) of at most 40 chars.

    Rejects what float() would otherwise accept: ``"nan"``, ``"inf"``, ``"1e5"``, ``"1_000"``,
    ``" 1"``, ``"-1"``.
    """
    return len(text) <= _MAX_NUMBER_LEN and text.isascii() and text.replace(".", "", 1).isdigit()

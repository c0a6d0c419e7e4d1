"""Bybit v5 public data frames: ``orderbook.{depth}.{symbol}`` (with ``orderbook.full`` and
``orderbook.rpi``), ``publicTrade.{symbol}`` and ``system.status``.

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
import orjson

from mdgw.core.bybit_spec import (
    FULL_DEPTH,
    FULL_TOPIC_PREFIX,
    RPI_DEPTH,
    RPI_TOPIC_PREFIX,
    SYSTEM_STATUS_TOPIC,
)
from mdgw.core.bybit_structs import (
    BookMsg,
    RpiData,
    RpiMsg,
    StatusItem,
    StatusMsg,
    TopicOnly,
    TradeItem,
    TradeMsg,
)
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


class FullFrame(BookFrame):
    """An ``orderbook.full.{symbol}`` frame: a delta, or the REST snapshot the ingestor
    fetched (:func:`full_snapshot_frame`). Its own type so the builder's dispatch by
    ``type()`` sends it to the full-book sync without a test on every ordinary frame."""

    __slots__ = ()


RpiLevel = tuple[float, str, str, str, float]
"""One RPI book level: (price key, price, non-RPI size, RPI size, the two sizes' sum).

A sum of 0 (both sizes zero) deletes the level. The strings are exactly what Bybit sent."""


@dataclass(slots=True)
class RpiFrame:
    """An ``orderbook.rpi.{symbol}`` frame (levels ``[price, non-RPI size, RPI size]``)."""

    topic: str
    symbol: str
    depth: int  # RPI_DEPTH: Bybit's RPI book has 50 levels a side
    snapshot: bool
    u: int
    seq: int
    ts: int
    cts: int
    bids: list[RpiLevel]
    asks: list[RpiLevel]


@dataclass(slots=True, frozen=True)
class StatusNotice:
    """One ``system.status`` record: a maintenance or incident notice."""

    id: str
    title: str
    state: str  # Bybit's words: scheduled, ongoing, completed, canceled (others passed on)
    begin: int  # ms; Bybit sends these as strings of digits
    end: int  # ms: the expected end until the work completes, then the actual end
    href: str
    service_types: tuple[int, ...]
    product: tuple[int, ...]
    maintain_type: str
    env: str


@dataclass(slots=True)
class StatusFrame:
    """A ``system.status`` frame (``/v5/public/misc/status``)."""

    topic: str
    ts: int
    notices: list[StatusNotice]


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
    rpi: bool = False  # an RPI trade (Bybit's "RPI" flag; absent before mid 2025)
    # The instrument when it is not the topic's: option trades come per base coin.
    symbol: str = ""
    # Options only (Bybit's mP, iP, mIv, iv): mark price, index price, mark IV, IV.
    option: tuple[str, str, str, str] | None = None


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


def rpi_topic(symbol: str) -> str:
    return f"{RPI_TOPIC_PREFIX}{symbol}"


def full_topic(symbol: str) -> str:
    return f"{FULL_TOPIC_PREFIX}{symbol}"


def book_topic(depth: int | str, symbol: str) -> str:
    """``orderbook.{depth}.{symbol}``; depth ``"full"`` is ``orderbook.full.{symbol}``."""
    return full_topic(symbol) if depth == "full" else orderbook_topic(int(depth), symbol)


def option_base(symbol: str) -> str:
    """``BTC-27DEC26-100000-C`` -> ``BTC``: options trade on ``publicTrade.{baseCoin}``."""
    return symbol.split("-", 1)[0]


def trade_topic_for(category: str, symbol: str) -> str:
    """The trade topic that carries *symbol*'s trades on *category*."""
    return trade_topic(option_base(symbol) if category == "option" else symbol)


def full_snapshot_frame(symbol: str, rest_body: bytes) -> bytes:
    """The REST ``full_orderbook`` answer as a book frame the builder can take in order with
    the deltas: ``{"topic":"orderbook.full.X","type":"snapshot",...,"data":{s,b,a,u,seq}}``.

    ParseError if the body is not a successful Bybit answer for *symbol*.
    """
    topic = full_topic(symbol)
    try:
        obj = orjson.loads(rest_body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {str(exc)[:80]}", topic) from None
    if not isinstance(obj, dict):
        raise ParseError("frame is not a JSON object", topic)
    result = obj.get("result")
    if obj.get("retCode") != 0 or not isinstance(result, dict):
        raise ParseError(f"REST answer retCode {str(obj.get('retCode'))[:20]}", topic)
    if result.get("s") != symbol:
        raise ParseError("REST answer for another symbol", topic)
    data = {k: result.get(k) for k in ("s", "b", "a", "u", "seq")}
    frame = {
        "topic": topic,
        "type": "snapshot",
        "ts": result.get("ts", 0),
        "data": data,
        "cts": result.get("cts", 0),
    }
    return orjson.dumps(frame)


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
_decode_rpi_msg = msgspec.json.Decoder(RpiMsg).decode
_decode_status_msg = msgspec.json.Decoder(StatusMsg).decode
_BOOK_PREFIX: Final = b'{"topic":"orderbook.'
_RPI_PREFIX: Final = b'{"topic":"orderbook.rpi.'
_TRADE_PREFIX: Final = b'{"topic":"publicTrade.'
_U64_MAX: Final = 2**64 - 1


def decode_frame(frame: bytes | str) -> BookFrame | TradeFrame | RpiFrame | StatusFrame:
    """Decode an ``orderbook.*``, ``publicTrade.*`` or ``system.status`` frame.

    ParseError otherwise (UnsupportedTopicError for a well-formed frame of another topic).
    """
    if type(frame) is not bytes:
        frame = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else b""
    # Bybit puts the topic first: its first bytes choose the decoder without parsing.
    if frame.startswith(_BOOK_PREFIX):
        if frame.startswith(_RPI_PREFIX):
            return _decode_rpi(frame)
        return _decode_book(frame)
    if frame.startswith(_TRADE_PREFIX):
        return _decode_trades(frame)
    topic = _topic(frame)
    if topic.startswith(RPI_TOPIC_PREFIX):
        return _decode_rpi(frame)
    if topic.startswith("orderbook."):
        return _decode_book(frame)
    if topic.startswith("publicTrade."):
        return _decode_trades(frame)
    if topic == SYSTEM_STATUS_TOPIC:
        return _decode_status(frame)
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


def parse_book_topic(topic: str) -> OrderbookTopic | None:
    """:func:`parse_orderbook_topic`, and ``orderbook.full.{symbol}`` as depth FULL_DEPTH."""
    if len(topic) > MAX_TOPIC_LEN:
        return None
    parsed = parse_orderbook_topic(topic)
    if parsed is None and topic.startswith(FULL_TOPIC_PREFIX):
        full_symbol = topic[len(FULL_TOPIC_PREFIX) :]
        if is_topic_symbol(full_symbol):
            return OrderbookTopic(full_symbol, FULL_DEPTH)
    return parsed


def _decode_book(frame: bytes) -> BookFrame:
    # The book builder's hot path: one msgspec call, then inline checks.
    try:
        msg = _decode_book_msg(frame)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise _invalid(frame, exc) from None
    topic = msg.topic
    parsed = parse_book_topic(topic)
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
    if parsed.depth == FULL_DEPTH and topic.startswith(FULL_TOPIC_PREFIX):
        return FullFrame(
            topic,
            symbol,
            FULL_DEPTH,
            snapshot,
            u,
            seq,
            ts,
            cts,
            parse_levels(data.b, "data.b", topic),
            parse_levels(data.a, "data.a", topic),
        )
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
    """One trade of a ``publicTrade`` frame, checked: Bybit's rules beyond the JSON types.

    On an option's ``publicTrade.{baseCoin}`` the trade names its option (``BTC-...``).
    """
    trade_symbol = item.s
    if trade_symbol == symbol:
        trade_symbol = ""
    elif not trade_symbol.startswith(symbol + "-") or not is_topic_symbol(trade_symbol):
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
    option: tuple[str, str, str, str] | None = None
    if item.mark_price is not None:
        option = _option_fields(item, topic)
    return Trade(
        trade_id, price, size, side_name, fill_ts, item.BT, seq, item.RPI, trade_symbol, option
    )


def _option_fields(item: TradeItem, topic: str) -> tuple[str, str, str, str]:
    # Option trades carry mark price, index price, mark IV and IV as decimal strings.
    values = (item.mark_price, item.index_price, item.mark_iv, item.iv)
    for name, value in zip(("mP", "iP", "mIv", "iv"), values, strict=True):
        if value is None or not value or not _is_signed_decimal(value):
            raise ParseError(f"bad option trade field {name}: {str(value)[:40]!r}", topic)
    mark, index, mark_iv, iv = values
    assert mark is not None and index is not None and mark_iv is not None and iv is not None
    return mark, index, mark_iv, iv


def _is_signed_decimal(text: str) -> bool:
    return is_decimal(text[1:] if text.startswith("-") else text)


def _decode_rpi(frame: bytes) -> RpiFrame:
    try:
        msg = _decode_rpi_msg(frame)
    except msgspec.DecodeError as exc:
        raise _invalid(frame, exc) from None
    topic = msg.topic
    if not topic or len(topic) > MAX_TOPIC_LEN:
        raise ParseError("missing or invalid topic")
    return rpi_from(msg.type, msg.data, msg.ts, msg.cts, topic)


def rpi_from(kind: str, data: RpiData, ts: int, cts: int, topic: str) -> RpiFrame:
    """An ``orderbook.rpi`` frame, checked: Bybit's rules beyond the JSON types."""
    symbol = topic[len(RPI_TOPIC_PREFIX) :]
    if not topic.startswith(RPI_TOPIC_PREFIX) or not is_topic_symbol(symbol):
        raise ParseError("malformed orderbook.rpi topic", topic)
    if kind not in ("snapshot", "delta"):
        raise ParseError(f"unknown book frame type {kind[:40]!r}", topic)
    if data.s != symbol:
        raise ParseError(f"data.s {data.s[:40]!r} does not match the topic", topic)
    for value, name in ((data.u, "data.u"), (data.seq, "data.seq"), (ts, "ts"), (cts, "cts")):
        if not 0 <= value <= _U64_MAX:
            raise ParseError(
                f"{name} must be a non-negative integer, got {str(value)[:40]!r}", topic
            )
    return RpiFrame(
        topic,
        symbol,
        RPI_DEPTH,
        kind == "snapshot",
        data.u,
        data.seq,
        ts,
        cts,
        rpi_levels(data.b, "data.b", topic),
        rpi_levels(data.a, "data.a", topic),
    )


def rpi_levels(raw: list[list[str]], field: str, topic: str) -> list[RpiLevel]:
    """``[[price, non-RPI size, RPI size], ...]`` as :data:`RpiLevel` s."""
    out: list[RpiLevel] = []
    for level in raw:
        if len(level) != 3:
            raise ParseError(f"{field}: bad level {str(level)[:60]}", topic)
        price, non_rpi, rpi = level
        # One size at a time through the two-size level check: same rules for each.
        key, _, _, qty_n = parse_levels([[price, non_rpi]], field, topic)[0]
        if not is_decimal(rpi):
            raise ParseError(f"{field}: bad level {str(level)[:60]}", topic)
        out.append((key, price, non_rpi, rpi, qty_n + float(rpi)))
    return out


def _decode_status(frame: bytes) -> StatusFrame:
    try:
        msg = _decode_status_msg(frame)
    except msgspec.DecodeError as exc:
        raise _invalid(frame, exc) from None
    topic = msg.topic
    if not 0 <= msg.ts <= _U64_MAX:
        raise ParseError(f"ts must be a non-negative integer, got {str(msg.ts)[:40]!r}", topic)
    return StatusFrame(topic, msg.ts, [notice_from(item, topic) for item in msg.data])


def notice_from(item: StatusItem, topic: str) -> StatusNotice:
    """One ``system.status`` notice, checked: Bybit's rules beyond the JSON types."""
    if not item.id or len(item.id) > 128:
        raise ParseError("notice id must be a non-empty string", topic)
    for name, text in (("title", item.title), ("state", item.state), ("href", item.href)):
        if len(text) > 1024:
            raise ParseError(f"notice {name} must be a string", topic)
    for name, ints in (("serviceTypes", item.service_types), ("product", item.product)):
        if len(ints) > 64:
            raise ParseError(f"notice {name} must be a list of integers", topic)
    return StatusNotice(
        id=item.id,
        title=item.title,
        state=item.state,
        begin=_ms(item.begin, "begin", topic),
        end=_ms(item.end, "end", topic),
        href=item.href,
        service_types=tuple(item.service_types),
        product=tuple(item.product),
        maintain_type=str(item.maintain_type)[:64],
        env=str(item.env)[:64],
    )


def _ms(value: str | int, name: str, topic: str) -> int:
    # Bybit documents begin/end as strings of milliseconds ("1751596902000"); take ints too.
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) <= 19:
            return int(value)
    elif 0 <= value <= _U64_MAX:
        return value
    raise ParseError(f"notice {name} must be milliseconds, got {str(value)[:40]!r}", topic)


# ------------------------------------------------------------------------ helpers


def is_decimal(text: str) -> bool:
    """A plain unsigned decimal (``"65000"``, ``"0.001"``, ``"65000.50"``) of at most 40 chars.

    Rejects what float() would otherwise accept: ``"nan"``, ``"inf"``, ``"1e5"``, ``"1_000"``,
    ``" 1"``, ``"-1"``.
    """
    return len(text) <= _MAX_NUMBER_LEN and text.isascii() and text.replace(".", "", 1).isdigit()

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

from collections.abc import Callable
from typing import Final, TypeVar

import msgspec

from mdgw.core.bybit_frames import (
    BookFrame,
    FullFrame,
    Level,
    RpiFrame,
    RpiLevel,
    StatusFrame,
    StatusNotice,
    Trade,
    TradeFrame,
    full_snapshot_frame,
)
from mdgw.core.bybit_spec import (
    FULL_DEPTH,
    FULL_TOPIC_PREFIX,
    RPI_DEPTH,
    RPI_TOPIC_PREFIX,
    SYSTEM_STATUS_TOPIC,
)
from mdgw.core.bybit_structs import (
    BookData,
    BookMsg,
    RpiData,
    RpiMsg,
    StatusItem,
    StatusMsg,
    TopicOnly,
    TradeItem,
    TradeMsg,
)
from mdgw.core.bybit_topics import (
    MAX_TOPIC_LEN,
    OrderbookTopic,
    book_topic,
    full_topic,
    option_base,
    orderbook_topic,
    parse_book_topic,
    parse_orderbook_topic,
    rpi_topic,
    topic_of,
    trade_topic,
    trade_topic_for,
)
from mdgw.core.errors import ParseError, UnsupportedTopicError
from mdgw.core.wire.topics import is_topic_symbol

# The frames (mdgw.core.bybit_frames) and the topic names (mdgw.core.bybit_topics) are
# re-exported: callers import everything Bybit-data from here.
__all__ = [
    "MAX_TOPIC_LEN",
    "BookFrame",
    "FullFrame",
    "Level",
    "OrderbookTopic",
    "RpiFrame",
    "RpiLevel",
    "StatusFrame",
    "StatusNotice",
    "Trade",
    "TradeFrame",
    "book_topic",
    "decode_frame",
    "full_snapshot_frame",
    "full_topic",
    "is_decimal",
    "notice_from",
    "option_base",
    "orderbook_topic",
    "parse_book_topic",
    "parse_levels",
    "parse_orderbook_topic",
    "rpi_from",
    "rpi_levels",
    "rpi_topic",
    "topic_of",
    "trade_from",
    "trade_topic",
    "trade_topic_for",
]

_MAX_SIGNIFICANT_DIGITS: Final = 15
_MAX_NUMBER_LEN: Final = 40  # longest price or size string accepted

# parse_levels' accept path in C (core/_levels.c), built and served with the compiled hot
# path (mdgw.compiled); absent in the pure-Python build, where parse_levels runs alone.
_parse_levels_c: Callable[[object, int, int], list[Level] | None] | None
# _decode_book's in C (core/_levels.c, scan_book): a book frame of one strict form decoded in
# one pass, levels and all, to the values msgspec and parse_levels would give; None for any
# other frame, which msgspec then decodes. Absent in the pure-Python build, like the above.
# Its ints come as one tuple, (u, seq, ts, cts), that the frame keeps (BookFrame.ints):
# typed tuple[int, ...], which mypyc holds as the object it is (a tuple of four ints would be
# unboxed into a C struct, and each int boxed again for the payload's C writer).
_decode_book_c: (
    Callable[
        [bytes, int, int], tuple[str, str, str, list[Level], list[Level], tuple[int, ...]] | None
    ]
    | None
)
try:  # both from the one module, so both present or both absent
    from mdgw.core._levels import parse as _parse_levels_c
    from mdgw.core._levels import scan_book as _decode_book_c
except ImportError:
    _parse_levels_c = _decode_book_c = None
# The same function as a Final name: compiled, a read of a C static, where each read of the
# global above is a lookup in the module's dict (~130 instructions; _decode_book read it twice).
_SCAN_BOOK: Final = _decode_book_c


# ------------------------------------------------------------------------ decode data
# One decoder per message type: msgspec decodes a frame straight into the typed structs
# below, checking JSON types in C and skipping the fields the gateway does not read; the
# checks after it are the rules msgspec cannot express (the topic's shape, the symbol
# matching it, decimal strings, ranges). Integers are checked against 0..2**64 - 1 by hand
# (_u64): msgspec's bounds stop at int64, and Bybit's ids are unsigned. One consequence of skipping:
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
_M = TypeVar("_M")


def decode_frame(frame: bytes | str) -> BookFrame | TradeFrame | RpiFrame | StatusFrame:
    """Decode an ``orderbook.*``, ``publicTrade.*`` or ``system.status`` frame.

    ParseError otherwise (UnsupportedTopicError for a well-formed frame of another topic).
    """
    if type(frame) is not bytes:
        frame = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else b""
    # msgspec refuses invalid UTF-8 in a string it decodes with UnicodeDecodeError, which is
    # no msgspec.DecodeError: caught once here, so that only ParseError leaves the decoder.
    # (A try costs nothing until it catches, in CPython 3.11 and in the compiled build.)
    try:
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
    except UnicodeDecodeError as exc:
        raise ParseError(f"invalid UTF-8: {str(exc)[:80]}", topic_of(frame)) from None
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


def _message(decode: Callable[[bytes], _M], frame: bytes) -> _M:
    """``decode(frame)`` with msgspec's refusal as the ParseError of :func:`_invalid`."""
    try:
        return decode(frame)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise _invalid(frame, exc) from None


def _checked_topic(topic: str) -> str:
    if not topic or len(topic) > MAX_TOPIC_LEN:
        raise ParseError("missing or invalid topic")
    return topic


def _u64(value: int) -> bool:
    """``0 <= value <= 2**64 - 1``: Bybit's ids and times are unsigned 64-bit.

    Written as a shift because the compiled build keeps ints below 2**62 unboxed, and a shift
    of one stays there, while a comparison with ``2**64 - 1`` (a boxed int) does not. The
    decoders test several values at once on the same grounds: ``(a | b) >> 64`` is 0 exactly
    when both are in range (a negative value makes it negative).
    """
    return not value >> 64


def _not_u64(topic: str, *named: tuple[str, int]) -> ParseError:
    """The ParseError for the first of ``named`` (name, value) that is not :func:`_u64`."""
    for name, value in named:
        if not _u64(value):
            return ParseError(
                f"{name} must be a non-negative integer, got {str(value)[:40]!r}", topic
            )
    return ParseError("integer out of range", topic)  # not reached: a caller found one


def _decode_book(frame: bytes) -> BookFrame:
    # The book builder's hot path: one decode (C's scan_book or msgspec), then inline checks
    # (no helper calls: a call is the dearest operation of the pure-Python build).
    bids: list[Level]
    asks: list[Level]
    data: BookData | None
    parsed: OrderbookTopic | None
    ints: tuple[int, ...] | None
    scan = _SCAN_BOOK
    if scan is None or (scanned := scan(frame, _MAX_NUMBER_LEN, _MAX_SIGNIFICANT_DIGITS)) is None:
        try:
            msg = _decode_book_msg(frame)
        except msgspec.DecodeError as exc:  # ValidationError is a subclass
            raise _invalid(frame, exc) from None
        # One name at a time: a tuple assignment would build and unpack a tuple.
        data = msg.data
        topic = msg.topic
        kind = msg.type
        sent_symbol = data.s
        u = data.u
        seq = data.seq
        ts = msg.ts
        cts = msg.cts
        ints = None  # the publish makes the tuple when it needs one (compiled)
    else:
        # What msgspec would have given, levels already parsed (see _decode_book_c).
        topic, kind, sent_symbol, bids, asks, ints = scanned
        # By index: mypyc unpacks a tuple[int, ...] through an iterator.
        u = ints[0]
        seq = ints[1]
        ts = ints[2]
        cts = ints[3]
        data = None
    parsed = parse_book_topic(topic)  # memoised: a dict lookup for a topic seen before
    if parsed is None:
        raise ParseError("malformed orderbook topic", _checked_topic(topic))
    symbol = parsed.symbol
    if kind == "delta":
        snapshot = False
    elif kind == "snapshot":
        snapshot = True
    else:
        raise ParseError(f"unknown book frame type {kind[:40]!r}", topic)
    if sent_symbol != symbol:
        raise ParseError(f"data.s {sent_symbol[:40]!r} does not match the topic", topic)
    if (u | seq | ts | cts) >> 64:  # _u64() of the four, inlined
        raise _not_u64(topic, ("data.u", u), ("data.seq", seq), ("ts", ts), ("cts", cts))
    if data is not None:
        bids = parse_levels(data.b, "data.b", topic)
        asks = parse_levels(data.a, "data.a", topic)
    if parsed.depth == FULL_DEPTH and topic.startswith(FULL_TOPIC_PREFIX):
        return FullFrame(topic, symbol, FULL_DEPTH, snapshot, u, seq, ts, cts, bids, asks, ints)
    return BookFrame(topic, symbol, parsed.depth, snapshot, u, seq, ts, cts, bids, asks, ints)


_DECIMAL_CHARS: Final = "0123456789."


def parse_levels(raw: object, field: str, topic: str) -> list[Level]:
    """``[[price, size], ...]`` as :data:`Level` s; ParseError naming ``field`` otherwise.

    Prices and sizes must be plain decimal strings; a price must be positive and have at
    most 15 significant digits (see the module docstring).
    """
    # The C accept path returns this function's list when every level is valid, and None
    # otherwise: the loop below then finds the fault and words the error. So the rules
    # live here only; tests/core/test_levels.py holds the C code to them.
    if _parse_levels_c is not None:
        levels = _parse_levels_c(raw, _MAX_NUMBER_LEN, _MAX_SIGNIFICANT_DIGITS)
        if levels is not None:
            return levels
    if type(raw) is not list:
        raise ParseError(f"{field} is not a list", topic)
    out: list[Level] = []
    level: object = None
    # Declared str: the compiled build checks each value is a str as it is unpacked (a
    # TypeError, so a ParseError below, if not) and then calls str's own strip, len and
    # float, instead of looking each method up on an object. Pure Python ignores this.
    price: str
    size: str
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
            if len(price) > _MAX_SIGNIFICANT_DIGITS and (
                len(price.replace(".", "").strip("0")) > _MAX_SIGNIFICANT_DIGITS
            ):
                raise ParseError(f"{field}: price {price[:40]!r} has too many digits", topic)
            # out.append, not a bound alias: the compiled build calls PyList_Append on a
            # list[Level] where an alias is a generic call; Python 3.11 specialises the
            # list append too.
            out.append((key, price, size, float(size)))
    except (TypeError, ValueError, AttributeError):
        raise ParseError(f"{field}: bad level {str(level)[:60]}", topic) from None
    return out


def _decode_trades(frame: bytes) -> TradeFrame:
    msg = _message(_decode_trade_msg, frame)
    topic = _checked_topic(msg.topic)
    symbol = topic[len("publicTrade.") :]
    if not is_topic_symbol(symbol):
        raise ParseError("malformed publicTrade topic", topic)
    trades = [trade_from(item, symbol, topic) for item in msg.data]
    ts = msg.ts
    if not _u64(ts):
        raise _not_u64(topic, ("ts", ts))
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
    fill_ts = item.T
    seq = 0 if item.seq is None else item.seq
    if not _u64(fill_ts | seq):
        raise _not_u64(topic, ("T", fill_ts), ("seq", seq))
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
    msg = _message(_decode_rpi_msg, frame)
    return rpi_from(msg.type, msg.data, msg.ts, msg.cts, _checked_topic(msg.topic))


def rpi_from(kind: str, data: RpiData, ts: int, cts: int, topic: str) -> RpiFrame:
    """An ``orderbook.rpi`` frame, checked: Bybit's rules beyond the JSON types."""
    symbol = topic[len(RPI_TOPIC_PREFIX) :]
    if not topic.startswith(RPI_TOPIC_PREFIX) or not is_topic_symbol(symbol):
        raise ParseError("malformed orderbook.rpi topic", topic)
    if kind not in ("snapshot", "delta"):
        raise ParseError(f"unknown book frame type {kind[:40]!r}", topic)
    if data.s != symbol:
        raise ParseError(f"data.s {data.s[:40]!r} does not match the topic", topic)
    if not _u64(data.u | data.seq | ts | cts):
        raise _not_u64(topic, ("data.u", data.u), ("data.seq", data.seq), ("ts", ts), ("cts", cts))
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
    msg = _message(_decode_status_msg, frame)
    topic = msg.topic
    if not _u64(msg.ts):
        raise _not_u64(topic, ("ts", msg.ts))
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
    elif _u64(value):
        return value
    raise ParseError(f"notice {name} must be milliseconds, got {str(value)[:40]!r}", topic)


# ------------------------------------------------------------------------ helpers


def is_decimal(text: str) -> bool:
    """A plain unsigned decimal (``"65000"``, ``"0.001"``, ``"65000.50"``) of at most 40 chars.

    Rejects what float() would otherwise accept: ``"nan"``, ``"inf"``, ``"1e5"``, ``"1_000"``,
    ``" 1"``, ``"-1"``.
    """
    return len(text) <= _MAX_NUMBER_LEN and text.isascii() and text.replace(".", "", 1).isdigit()

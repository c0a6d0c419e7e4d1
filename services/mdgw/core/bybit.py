"""Bybit v5 public stream messages: classify, decode, and build requests.

Pure functions over bytes. Every decoder raises :class:`~mdgw.core.errors.ParseError`
on bad input and nothing else (fuzzed in tests/core/test_bybit.py).

Protocol facts used here (see ../shared/reference/bybit-v5-public.md):

- Data frames carry ``topic``; Bybit puts it first on every category, so
  ``{"topic":`` at byte 0 identifies them without parsing (the ingestor's hot path).
- A pong is ``ret_msg == "pong"`` (spot and derivatives answer ``{"op":"ping"}`` with
  ``"op":"ping"``) or ``op == "pong"`` (options; one spot capture too).
- Subscribe acks and errors carry ``success``; errors name the topic in ``ret_msg``
  as ``error:...,topic:X`` (derivatives) or ``Invalid symbol :[X]`` (spot), and may
  lack ``req_id``.
- Prices and sizes are strings and stay exactly as sent. Ordering uses
  ``float(price)``: every decimal of at most 15 significant digits maps to a distinct
  double and the mapping is monotonic, so the float order is the decimal order.
  Longer prices are rejected rather than silently merged.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson

from mdgw.core.bybit_structs import FastBook
from mdgw.core.errors import ParseError, UnsupportedTopicError

CATEGORIES: Final = ("spot", "linear", "inverse", "option")
DEPTHS: Final = (1, 50, 200, 1000)  # what Bybit offers on spot/linear/inverse since Sept 2025
OPTION_DEPTHS: Final = (25, 100)  # option books: 25 levels every 20 ms, 100 every 100 ms
RPI_DEPTH: Final = 50  # orderbook.rpi.{symbol}: 50 levels a side, every 100 ms
RPI_TOPIC_PREFIX: Final = "orderbook.rpi."
# orderbook.full.{symbol}: delta-only, every 200 ms, synced from the REST full_orderbook
# snapshot (up to 10,000 levels a side); kept to this many levels a side.
FULL_TOPIC_PREFIX: Final = "orderbook.full."
FULL_DEPTH: Final = 10_000
FULL_ORDERBOOK_PATH: Final = "/v5/market/full_orderbook"
SYSTEM_STATUS_TOPIC: Final = "system.status"  # on /v5/public/misc/status
SYSTEM_STATUS_PATH: Final = "misc/status"  # appended to the public ws base URL

# Bybit: spot accepts at most 10 args per subscribe request ("args size >10").
# Derivatives have "no args limit for now"; we still keep requests small.
MAX_ARGS_PER_REQUEST: Final = {"spot": 10, "linear": 100, "inverse": 100, "option": 100}
# Bybit: an option connection may hold at most 2,000 args.
MAX_ARGS_PER_CONNECTION: Final = {"option": 2000}
# Bybit: the args of one public connection may total at most 21,000 characters.
MAX_ARGS_CHARS_PER_CONNECTION: Final = 21_000

MAX_TOPIC_LEN: Final = 256
_MAX_SIGNIFICANT_DIGITS: Final = 15
_MAX_NUMBER_LEN: Final = 40  # longest price or size string accepted

_DATA_PREFIX: Final = b'{"topic":'
_TOPIC_KEY: Final = b'"topic":"'


class FrameKind(enum.Enum):
    """What a received frame is, as far as the ingestor cares."""

    DATA = "data"  # has a topic: forward it unchanged
    PONG = "pong"
    ACK = "ack"  # success: true answer to subscribe / unsubscribe
    ERROR = "error"  # success: false
    UNKNOWN = "unknown"  # valid JSON of no known shape, or not JSON at all


@dataclass(slots=True, frozen=True)
class Control:
    """A decoded non-data frame (ack, pong, error)."""

    kind: FrameKind
    op: str
    ret_msg: str
    req_id: str
    conn_id: str
    failed_topics: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()  # options' COMMAND_RESP: the topics it acknowledges


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


def full_snapshot_frame(symbol: str, rest_body: bytes) -> bytes:
    """The REST ``full_orderbook`` answer as a book frame the builder can take in order with
    the deltas: ``{"topic":"orderbook.full.X","type":"snapshot",...,"data":{s,b,a,u,seq}}``.

    ParseError if the body is not a successful Bybit answer for *symbol*.
    """
    obj = _loads(rest_body, full_topic(symbol))
    result = obj.get("result")
    if obj.get("retCode") != 0 or not isinstance(result, dict):
        raise ParseError(f"REST answer retCode {str(obj.get('retCode'))[:20]}", full_topic(symbol))
    if result.get("s") != symbol:
        raise ParseError("REST answer for another symbol", full_topic(symbol))
    data = {k: result.get(k) for k in ("s", "b", "a", "u", "seq")}
    frame = {
        "topic": full_topic(symbol),
        "type": "snapshot",
        "ts": result.get("ts", 0),
        "data": data,
        "cts": result.get("cts", 0),
    }
    return orjson.dumps(frame)


def option_base(symbol: str) -> str:
    """``BTC-27DEC26-100000-C`` -> ``BTC``: options trade on ``publicTrade.{baseCoin}``."""
    return symbol.split("-", 1)[0]


def trade_topic_for(category: str, symbol: str) -> str:
    """The trade topic that carries *symbol*'s trades on *category*."""
    return trade_topic(option_base(symbol) if category == "option" else symbol)


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


# ----------------------------------------------------------------- classify control


def classify(frame: bytes) -> FrameKind:
    """Cheap first look: data frames are recognised by their first bytes alone."""
    if frame.startswith(_DATA_PREFIX):
        return FrameKind.DATA
    try:
        return decode_control(frame).kind
    except ParseError:
        return FrameKind.UNKNOWN


def decode_control(frame: bytes | str) -> Control:
    """Decode a non-data frame: pong, subscribe/unsubscribe ack or error."""
    obj = _loads(frame, None)
    if "topic" in obj:
        return Control(FrameKind.DATA, "", "", "", "")
    op = _opt_str(obj.get("op"))
    ret_msg = _opt_str(obj.get("ret_msg"))
    req_id = _opt_str(obj.get("req_id"))
    conn_id = _opt_str(obj.get("conn_id"))
    if ret_msg == "pong" or op == "pong":
        return Control(FrameKind.PONG, op, ret_msg, req_id, conn_id)
    success = obj.get("success")
    if obj.get("type") == "COMMAND_RESP":  # option/spread shape: per-topic lists
        # It names no op: the topics it lists say which request it answers.
        data = obj.get("data")
        fail = data.get("failTopics") if isinstance(data, dict) else None
        ok = data.get("successTopics") if isinstance(data, dict) else None
        failed = tuple(t for t in fail if isinstance(t, str)) if isinstance(fail, list) else ()
        good = tuple(t for t in ok if isinstance(t, str)) if isinstance(ok, list) else ()
        kind = FrameKind.ERROR if failed or success is False else FrameKind.ACK
        return Control(kind, op, ret_msg, req_id, conn_id, failed, good)
    if success is True:
        return Control(FrameKind.ACK, op, ret_msg, req_id, conn_id)
    if success is False:
        return Control(FrameKind.ERROR, op, ret_msg, req_id, conn_id, failed_topics(ret_msg))
    return Control(FrameKind.UNKNOWN, op, ret_msg, req_id, conn_id)


def failed_topics(ret_msg: str) -> tuple[str, ...]:
    """Topics named in an error text, in either of Bybit's two spellings.

    ``error:already subscribed,topic:publicTrade.BTCUSDT`` (derivatives) and
    ``Invalid symbol :[orderbook.50.NOSUCHSYM]`` (spot). Empty when none is named
    (``args size >10``): then the whole request failed.
    """
    if "topic:" in ret_msg:
        tail = ret_msg.split("topic:", 1)[1]
        return tuple(t for t in (p.strip() for p in tail.split(",")) if t)
    if "[" in ret_msg and "]" in ret_msg:
        inner = ret_msg[ret_msg.index("[") + 1 : ret_msg.rindex("]")]
        return tuple(t for t in (p.strip() for p in inner.split(",")) if t)
    return ()


# ------------------------------------------------------------------------ decode data


def decode_frame(frame: bytes | str) -> BookFrame | TradeFrame | RpiFrame | StatusFrame:
    """Decode an ``orderbook.*``, ``publicTrade.*`` or ``system.status`` frame.

    ParseError otherwise (UnsupportedTopicError for a well-formed frame of another topic).
    """
    if type(frame) is bytes and frame.startswith(_BOOK_PREFIX):
        fast = _decode_book_fast(frame)
        if fast is not None:
            return fast
    return _decode_frame_checked(frame)


def _decode_frame_checked(frame: bytes | str) -> BookFrame | TradeFrame | RpiFrame | StatusFrame:
    # The reference decoder: every frame the fast path does not take, and the one that
    # names what is wrong with a bad frame.
    obj = _loads(frame, None)
    topic = obj.get("topic")
    if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_LEN:
        raise ParseError("missing or invalid topic")
    if topic.startswith("orderbook."):
        if topic.startswith(RPI_TOPIC_PREFIX):
            return _decode_rpi(obj, topic)
        return _decode_book(obj, topic)  # orderbook.full.X too: depth FULL_DEPTH
    if topic.startswith("publicTrade."):
        return _decode_trades(obj, topic)
    if topic == SYSTEM_STATUS_TOPIC:
        return _decode_status(obj, topic)
    raise UnsupportedTopicError("unsupported topic", topic)


# What a symbol may look like for the gateway: Bybit's symbols are upper-case letters and
# digits, with "-" in dated option/USDC contracts. Anything else would not fit a topic.
_SYMBOL = re.compile(r"[A-Za-z0-9_-]{1,64}")


@functools.lru_cache(maxsize=16384)
def valid_symbol(symbol: str) -> bool:
    return _SYMBOL.fullmatch(symbol) is not None


@functools.lru_cache(maxsize=16384)
def parse_book_topic(topic: str) -> tuple[str, int] | None:
    """``orderbook.50.BTCUSDT`` -> ``("BTCUSDT", 50)``; None if malformed. Cached: topics repeat."""
    parts = topic.split(".")
    if len(parts) != 3 or parts[0] != "orderbook":
        return None
    depth_text, symbol = parts[1], parts[2]
    if not depth_text.isascii() or not depth_text.isdigit() or len(depth_text) > 5:
        return None
    depth = int(depth_text)
    if depth < 1 or not valid_symbol(symbol):
        return None
    return symbol, depth


def _decode_book(obj: dict[str, Any], topic: str) -> BookFrame:
    # The hot path of the book builder: direct indexing inside one try, type() checks
    # inline, no helper call per field. Every failure still ends in ParseError.
    parsed = parse_book_topic(topic)
    if parsed is None and topic.startswith(FULL_TOPIC_PREFIX):
        full_symbol = topic[len(FULL_TOPIC_PREFIX) :]
        parsed = (full_symbol, FULL_DEPTH) if valid_symbol(full_symbol) else None
    if parsed is None:
        raise ParseError("malformed orderbook topic", topic)
    symbol, depth = parsed
    kind = obj.get("type")
    if kind == "delta":
        snapshot = False
    elif kind == "snapshot":
        snapshot = True
    else:
        raise ParseError(f"unknown book frame type {str(kind)[:40]!r}", topic)
    data = obj.get("data")
    if type(data) is not dict:
        raise ParseError("data is not an object", topic)
    if data.get("s") != symbol:
        raise ParseError(f"data.s {str(data.get('s'))[:40]!r} does not match the topic", topic)
    u = data.get("u")
    seq = data.get("seq", 0)
    ts = obj.get("ts")
    cts = obj.get("cts", 0)
    if type(u) is not int or u < 0:
        raise ParseError(f"data.u must be a non-negative integer, got {str(u)[:40]!r}", topic)
    if type(seq) is not int or seq < 0:
        raise ParseError(f"data.seq must be a non-negative integer, got {str(seq)[:40]!r}", topic)
    if type(ts) is not int or ts < 0:
        raise ParseError(f"ts must be a non-negative integer, got {str(ts)[:40]!r}", topic)
    if type(cts) is not int or cts < 0:
        raise ParseError(f"cts must be a non-negative integer, got {str(cts)[:40]!r}", topic)
    return (FullFrame if depth == FULL_DEPTH else BookFrame)(
        topic,
        symbol,
        depth,
        snapshot,
        u,
        seq,
        ts,
        cts,
        _levels(data.get("b"), "data.b", topic),
        _levels(data.get("a"), "data.a", topic),
    )


_DECIMAL_CHARS: Final = "0123456789."

# ---- the book builder's fast path for orderbook frames ----------------------------------
# msgspec decodes a frame straight into the typed structs of core/bybit_structs.py, checking
# the JSON types in C (0.7 µs for a delta against 1 µs for orjson.loads alone plus ~2 µs of
# Python checks on the dict). It accepts a subset of what the reference decoder accepts:
# anything msgspec or the checks below reject goes to _decode_frame_checked, which decodes it
# again and either returns the same frame or raises the ParseError that names the problem.
# Integer fields are capped at 2**63 - 1 here (msgspec's largest bound; the reference takes
# up to 2**64 - 1). One difference is accepted: fields the gateway does not read are skipped
# unchecked, so invalid UTF-8 inside one of them no longer makes the whole frame malformed.
_BOOK_PREFIX: Final = b'{"topic":"orderbook.'
_fast_book_decode = msgspec.json.Decoder(FastBook).decode


def _decode_book_fast(frame: bytes) -> BookFrame | None:
    """The frame decoded, or None to let the reference decoder have it (or reject it)."""
    try:
        msg = _fast_book_decode(frame)
    except msgspec.DecodeError:  # ValidationError is a subclass
        return None
    topic = msg.topic
    parsed = parse_book_topic(topic) if len(topic) <= MAX_TOPIC_LEN else None
    data = msg.data
    if parsed is None or data.s != parsed[0]:
        return None
    kind = msg.type
    if kind == "delta":
        snapshot = False
    elif kind == "snapshot":
        snapshot = True
    else:
        return None
    try:
        bids = _levels(data.b, "data.b", topic)
        asks = _levels(data.a, "data.a", topic)
    except ParseError:
        return None
    return BookFrame(
        topic, parsed[0], parsed[1], snapshot, data.u, data.seq, msg.ts, msg.cts, bids, asks
    )


def _levels(raw: object, field: str, topic: str) -> list[Level]:
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


def _decode_trades(obj: dict[str, Any], topic: str) -> TradeFrame:
    symbol = topic[len("publicTrade.") :]
    if not valid_symbol(symbol):
        raise ParseError("malformed publicTrade topic", topic)
    data = obj.get("data")
    if not isinstance(data, list):
        raise ParseError("data is not a list", topic)
    trades: list[Trade] = []
    for item in data:
        if not isinstance(item, dict):
            raise ParseError("trade is not an object", topic)
        trade_symbol = item.get("s")
        if trade_symbol == symbol:
            trade_symbol = ""
        elif (
            type(trade_symbol) is not str
            or not trade_symbol.startswith(symbol + "-")  # an option of this base coin
            or not valid_symbol(trade_symbol)
        ):
            raise ParseError(f"trade symbol {item.get('s')!r} does not match the topic", topic)
        side = item.get("S")
        if side == "Buy":
            side_name = "buy"
        elif side == "Sell":
            side_name = "sell"
        else:
            raise ParseError(f"trade side {side!r} is not Buy/Sell", topic)
        trade_id = item.get("i")
        price = item.get("p")
        size = item.get("v")
        if type(trade_id) is not str or not trade_id or len(trade_id) > 128:
            raise ParseError("trade id must be a non-empty string", topic)
        if type(price) is not str or not _is_decimal(price) or float(price) <= 0.0:
            raise ParseError(f"bad trade price {str(price)[:40]!r}", topic)
        if type(size) is not str or not _is_decimal(size):
            raise ParseError(f"bad trade size {str(size)[:40]!r}", topic)
        block = item.get("BT", False)
        if type(block) is not bool:
            raise ParseError("trade BT must be a boolean", topic)
        rpi = item.get("RPI", False)
        if type(rpi) is not bool:
            raise ParseError("trade RPI must be a boolean", topic)
        option = _option_fields(item, topic) if "mP" in item else None
        trades.append(
            Trade(
                id=trade_id,
                price=price,
                size=size,
                side=side_name,
                ts=_uint(item.get("T"), "T", topic),
                block=block,
                seq=_uint_or_zero(item.get("seq"), "seq", topic),
                rpi=rpi,
                option=option,
                symbol=trade_symbol,
            )
        )
    return TradeFrame(
        topic=topic, symbol=symbol, ts=_uint(obj.get("ts"), "ts", topic), trades=trades
    )


def _option_fields(item: dict[str, Any], topic: str) -> tuple[str, str, str, str]:
    # Option trades carry mark price, index price, mark IV and IV as decimal strings.
    values = []
    for name in ("mP", "iP", "mIv", "iv"):
        value = item.get(name)
        if type(value) is not str or not value or not _is_signed_decimal(value):
            raise ParseError(f"bad option trade field {name}: {str(value)[:40]!r}", topic)
        values.append(value)
    return values[0], values[1], values[2], values[3]


def _is_signed_decimal(text: str) -> bool:
    return _is_decimal(text[1:] if text.startswith("-") else text)


def _decode_rpi(obj: dict[str, Any], topic: str) -> RpiFrame:
    symbol = topic[len(RPI_TOPIC_PREFIX) :]
    if not valid_symbol(symbol):
        raise ParseError("malformed orderbook.rpi topic", topic)
    kind = obj.get("type")
    if kind not in ("snapshot", "delta"):
        raise ParseError(f"unknown book frame type {str(kind)[:40]!r}", topic)
    data = obj.get("data")
    if type(data) is not dict:
        raise ParseError("data is not an object", topic)
    if data.get("s") != symbol:
        raise ParseError(f"data.s {str(data.get('s'))[:40]!r} does not match the topic", topic)
    return RpiFrame(
        topic,
        symbol,
        RPI_DEPTH,
        kind == "snapshot",
        _uint(data.get("u"), "data.u", topic),
        _uint_or_zero(data.get("seq"), "data.seq", topic),
        _uint(obj.get("ts"), "ts", topic),
        _uint_or_zero(obj.get("cts"), "cts", topic),
        _rpi_levels(data.get("b"), "data.b", topic),
        _rpi_levels(data.get("a"), "data.a", topic),
    )


def _rpi_levels(raw: object, field: str, topic: str) -> list[RpiLevel]:
    if type(raw) is not list:
        raise ParseError(f"{field} is not a list", topic)
    out: list[RpiLevel] = []
    for level in raw:
        if type(level) is not list or len(level) != 3:
            raise ParseError(f"{field}: bad level {str(level)[:60]}", topic)
        price, non_rpi, rpi = level
        # One size at a time through the two-size level check: same rules for each.
        key, _, _, qty_n = _levels([[price, non_rpi]], field, topic)[0]
        if type(rpi) is not str or not _is_decimal(rpi):
            raise ParseError(f"{field}: bad level {str(level)[:60]}", topic)
        out.append((key, price, non_rpi, rpi, qty_n + float(rpi)))
    return out


def _decode_status(obj: dict[str, Any], topic: str) -> StatusFrame:
    data = obj.get("data")
    if not isinstance(data, list):
        raise ParseError("data is not a list", topic)
    notices: list[StatusNotice] = []
    for item in data:
        if not isinstance(item, dict):
            raise ParseError("notice is not an object", topic)
        notice_id = item.get("id")
        if type(notice_id) is not str or not notice_id or len(notice_id) > 128:
            raise ParseError("notice id must be a non-empty string", topic)
        notices.append(
            StatusNotice(
                id=notice_id,
                title=_str_field(item, "title", topic),
                state=_str_field(item, "state", topic),
                begin=_ms_field(item, "begin", topic),
                end=_ms_field(item, "end", topic),
                href=_str_field(item, "href", topic),
                service_types=_int_list(item, "serviceTypes", topic),
                product=_int_list(item, "product", topic),
                maintain_type=str(item.get("maintainType", ""))[:64],
                env=str(item.get("env", ""))[:64],
            )
        )
    return StatusFrame(topic=topic, ts=_uint(obj.get("ts"), "ts", topic), notices=notices)


def _str_field(item: dict[str, Any], name: str, topic: str) -> str:
    value = item.get(name, "")
    if type(value) is not str or len(value) > 1024:
        raise ParseError(f"notice {name} must be a string", topic)
    return value


def _ms_field(item: dict[str, Any], name: str, topic: str) -> int:
    # Bybit documents begin/end as strings of milliseconds ("1751596902000"); take ints too.
    value = item.get(name)
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    if type(value) is int and value >= 0:
        return value
    raise ParseError(f"notice {name} must be milliseconds, got {str(value)[:40]!r}", topic)


def _int_list(item: dict[str, Any], name: str, topic: str) -> tuple[int, ...]:
    value = item.get(name, [])
    if type(value) is not list or not all(type(v) is int for v in value) or len(value) > 64:
        raise ParseError(f"notice {name} must be a list of integers", topic)
    return tuple(value)


# ----------------------------------------------------------------------- requests


def ping_request(req_id: str = "") -> bytes:
    return orjson.dumps({"req_id": req_id, "op": "ping"} if req_id else {"op": "ping"})


def subscribe_requests(category: str, topics: Sequence[str], req_id_prefix: str) -> list[bytes]:
    """``subscribe`` requests for topics, batched within the category's per-request limit.

    Request i carries ``req_id = f"{req_id_prefix}{i}"`` so its ack can be matched.
    """
    return _requests("subscribe", category, topics, req_id_prefix)


def unsubscribe_requests(category: str, topics: Sequence[str], req_id_prefix: str) -> list[bytes]:
    return _requests("unsubscribe", category, topics, req_id_prefix)


def request_batches(category: str, topics: Sequence[str]) -> list[list[str]]:
    """Split topics into request-sized batches (spot: 10 args per request)."""
    try:
        size = MAX_ARGS_PER_REQUEST[category]
    except KeyError:
        raise ValueError(f"unknown category {category!r}") from None
    return [list(topics[i : i + size]) for i in range(0, len(topics), size)]


def _requests(op: str, category: str, topics: Sequence[str], req_id_prefix: str) -> list[bytes]:
    return [
        orjson.dumps({"req_id": f"{req_id_prefix}{i}", "op": op, "args": batch})
        for i, batch in enumerate(request_batches(category, topics))
    ]


def args_chars(topics: Iterable[str]) -> int:
    """Characters the topics take in an ``args`` array (quotes and commas included).

    Bybit does not say how it counts its 21,000-character limit; counting the JSON
    text of the array is the conservative reading.
    """
    total = 2  # the brackets
    for i, topic in enumerate(topics):
        total += len(topic) + 2 + (1 if i else 0)
    return total


def plan_connections(
    topics: Sequence[str],
    max_chars: int = MAX_ARGS_CHARS_PER_CONNECTION,
    max_args: int | None = None,
) -> list[list[str]]:
    """Pack topics into as few connections as Bybit's per-connection args limit allows.

    Order is kept, so a symbol's book and trade topics usually share a connection.
    """
    groups: list[list[str]] = []
    current: list[str] = []
    used = 2
    for topic in topics:
        cost = len(topic) + 2 + (1 if current else 0)
        if len(topic) + 4 > max_chars:
            raise ValueError(f"topic {topic!r} alone exceeds the per-connection args limit")
        if used + cost > max_chars or (max_args is not None and len(current) >= max_args):
            groups.append(current)
            current, used = [], 2
            cost = len(topic) + 2
        current.append(topic)
        used += cost
    if current:
        groups.append(current)
    return groups


# ------------------------------------------------------------------------ helpers


def _loads(frame: bytes | str, topic: str | None) -> dict[str, Any]:
    try:
        obj = orjson.loads(frame)
    except (orjson.JSONDecodeError, TypeError) as exc:
        guess = topic or (topic_of(frame) if isinstance(frame, bytes) else None)
        raise ParseError(f"invalid JSON: {str(exc)[:80]}", guess) from None
    if not isinstance(obj, dict):
        raise ParseError("frame is not a JSON object", topic)
    return obj


def _is_decimal(text: str) -> bool:
    # Plain unsigned decimal ("65000", "0.001", "65000.50"). Rejects what float()
    # would otherwise accept: "nan", "inf", "1e5", "1_000", " 1", "-1".
    return len(text) <= _MAX_NUMBER_LEN and text.isascii() and text.replace(".", "", 1).isdigit()


def _uint(value: object, field: str, topic: str) -> int:
    if type(value) is not int or value < 0:
        raise ParseError(f"{field} must be a non-negative integer, got {str(value)[:40]!r}", topic)
    return value


def _uint_or_zero(value: object, field: str, topic: str) -> int:
    return 0 if value is None else _uint(value, field, topic)


def _opt_str(value: object) -> str:
    return value if isinstance(value, str) else ""

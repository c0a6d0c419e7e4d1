"""mdgw's own wire formats: the raw envelope, published messages, control and snapshot framing.

Sans-I/O: these functions turn values into ``bytes`` / ``list[bytes]`` (what pyzmq sends) and
back. Decoders raise :class:`~mdgw.core.errors.WireError` and nothing else on bad input, so a
shell can count, log and skip one bad message. docs/wire-format.md is the user-facing
description of everything here; keep the two in step.

1. Raw envelope (ingestor PUSH -> book_builder PULL): ONE ZeroMQ frame, a fixed 24-byte
   little-endian header, the ingestor id, then the Bybit frame bytes unchanged. One frame
   rather than ``[envelope, frame]`` because pyzmq pays ~2 µs per extra frame and the header
   costs one ``struct.pack`` plus a concatenation.
2. Published messages (book_builder PUB -> consumers): ``[topic, payload]``. Topics are
   ``{channel}.{category}.{SYMBOL}.``; the trailing ``"."`` is a terminator, so the ZeroMQ
   prefix subscription ``book.inverse.BTCUSD.`` does not receive ``book.inverse.BTCUSDH26.``.
   Payloads are one JSON object with the contract fields of DESIGN §4.
3. Control (``[b"resync", json]``, builder -> ingestors) and the snapshot service
   (request: one frame holding a topic prefix; reply: ``[topic, payload]*`` pairs then
   ``[b"END", json]``, or ``[b"ERROR", json]`` for a refused request).

Payload encoders take everything after ``(category, symbol)`` by keyword: ``seq``,
``pub_ns``, ``recv_ns``, ``u``, ``ts`` and ``cts`` are adjacent ints, too easy to swap.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Sequence
from enum import IntEnum
from typing import Any, NamedTuple

import orjson

from mdgw.core.errors import WireError

__all__ = [
    "BOOK_FIELDS",
    "CATEGORIES",
    "CHANNELS",
    "CHANNEL_FIELDS",
    "COMMON_FIELDS",
    "END",
    "ENVELOPE_VERSION",
    "ERROR",
    "EXCHANGE",
    "HEADER_SIZE",
    "MAX_PREFIX_LEN",
    "MAX_RESYNC_TOPIC_LEN",
    "RESYNC",
    "STATES",
    "Envelope",
    "EnvelopeKind",
    "RawEncoder",
    "RawTuple",
    "ResyncRequest",
    "book_template",
    "category_code",
    "decode_envelope",
    "decode_payload",
    "decode_raw",
    "decode_resync",
    "decode_snapshot_reply",
    "decode_snapshot_request",
    "encode_bbo",
    "encode_book",
    "encode_raw",
    "encode_resync",
    "encode_snapshot_error",
    "encode_snapshot_reply",
    "encode_snapshot_request",
    "encode_status",
    "encode_trade",
    "parse_topic",
    "split_snapshot_request",
    "subscription",
    "topic",
]

# ---------------------------------------------------------------------------------------------
# 1. Raw envelope
# ---------------------------------------------------------------------------------------------

ENVELOPE_VERSION = 1

# version u8, kind u8, category u8, id_len u8, conn_id u32, seq u64, recv_ns u64 = 24 bytes,
# every field naturally aligned. The ingestor id (id_len bytes, UTF-8) and the Bybit frame follow.
_HEADER = struct.Struct("<BBBBIQQ")
HEADER_SIZE = _HEADER.size

CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse")
"""Bybit v5 public categories; the index is the category code in the envelope header."""

_CATEGORY_CODES = {name: code for code, name in enumerate(CATEGORIES)}


class EnvelopeKind(IntEnum):
    """What a raw envelope reports. Only DATA carries a Bybit frame."""

    DATA = 0  # a Bybit frame; seq = 1, 2, 3... per connection, no holes
    CONN_UP = 1  # a websocket connection opened; seq = 0
    CONN_DOWN = 2  # a websocket connection closed; seq = the last DATA seq sent on it
    HEARTBEAT = 3  # every second from a live ingestor; conn_id = 0, seq = 0


_MAX_KIND = max(EnvelopeKind)

RawTuple = tuple[int, str, str, int, int, int, bytes]
"""What :func:`decode_raw` returns: (kind, ingestor, category, conn_id, seq, recv_ns, frame)."""


class Envelope(NamedTuple):
    """A decoded raw envelope, for code that prefers names over the tuple of the hot path."""

    kind: EnvelopeKind
    ingestor: str
    category: str
    conn_id: int
    seq: int
    recv_ns: int  # wall-clock ns: frame receipt for DATA, event time for the other kinds
    frame: bytes  # the Bybit frame, unchanged; empty for the other kinds


def category_code(name: str) -> int:
    """The envelope code of a Bybit category name (``"spot"`` -> 0)."""
    try:
        return _CATEGORY_CODES[name]
    except (KeyError, TypeError):
        raise WireError(f"unknown category {name!r}; expected one of {CATEGORIES}") from None


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
    """One raw envelope. The ingestor's hot path should use :class:`RawEncoder` instead."""
    if not 0 <= kind <= _MAX_KIND:
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


class RawEncoder:
    """Encodes the envelopes of one ingestor and category, with the constant parts checked once.

    ``data()`` is the ingestor's per-frame hot path: one ``struct.pack`` and two concatenations.
    """

    __slots__ = ("_category", "_id", "_id_len", "category", "ingestor")

    def __init__(self, ingestor: str, category: str) -> None:
        ingestor_id = ingestor.encode()
        if not 1 <= len(ingestor_id) <= 255:
            raise WireError(f"ingestor id must be 1..255 UTF-8 bytes, got {len(ingestor_id)}")
        self.ingestor = ingestor
        self.category = category
        self._category = category_code(category)
        self._id = ingestor_id
        self._id_len = len(ingestor_id)

    def _encode(self, kind: int, conn_id: int, seq: int, recv_ns: int, frame: bytes) -> bytes:
        try:
            header = _HEADER.pack(
                ENVELOPE_VERSION, kind, self._category, self._id_len, conn_id, seq, recv_ns
            )
        except struct.error as exc:
            raise WireError(f"envelope field out of range: {exc}") from None
        return header + self._id + frame

    def data(self, conn_id: int, seq: int, recv_ns: int, frame: bytes) -> bytes:
        """A Bybit frame received on connection ``conn_id``, the ``seq``-th on it (from 1)."""
        # _encode() inlined: this runs once per Bybit frame.
        try:
            header = _HEADER.pack(
                ENVELOPE_VERSION, 0, self._category, self._id_len, conn_id, seq, recv_ns
            )
        except struct.error as exc:
            raise WireError(f"envelope field out of range: {exc}") from None
        return header + self._id + frame

    def conn_up(self, conn_id: int, now_ns: int, *, slot: str = "") -> bytes:
        """Connection ``conn_id`` opened; its DATA seq restarts at 1.

        ``slot`` names the connection slot (``"linear#0"``) in the frame part, so that the
        builder can keep per-source counters across the slot's reconnects (at most 64
        bytes are read).
        """
        return self._encode(EnvelopeKind.CONN_UP, conn_id, 0, now_ns, slot.encode()[:64])

    def conn_down(self, conn_id: int, last_seq: int, now_ns: int) -> bytes:
        """Connection ``conn_id`` closed after sending DATA seq 1..``last_seq``."""
        return self._encode(EnvelopeKind.CONN_DOWN, conn_id, last_seq, now_ns, b"")

    def heartbeat(self, now_ns: int) -> bytes:
        """This ingestor is alive (sent every second)."""
        return self._encode(EnvelopeKind.HEARTBEAT, 0, 0, now_ns, b"")


def decode_raw(msg: bytes) -> RawTuple:
    """Split a raw envelope into ``(kind, ingestor, category, conn_id, seq, recv_ns, frame)``.

    ``kind`` is a plain int (compare with :class:`EnvelopeKind` members), ``category`` the
    category name, ``frame`` the Bybit bytes unchanged (a copy of that part of ``msg``).
    Raises :class:`WireError` on anything that is not a version-1 envelope.
    """
    if len(msg) < HEADER_SIZE:
        raise WireError(f"envelope of {len(msg)} bytes is shorter than its header")
    version, kind, category, id_len, conn_id, seq, recv_ns = _HEADER.unpack_from(msg)
    if version != ENVELOPE_VERSION:
        raise WireError(f"unsupported envelope version {version}")
    if kind > _MAX_KIND:
        raise WireError(f"unknown envelope kind {kind}")
    if category >= len(CATEGORIES):
        raise WireError(f"unknown category code {category}")
    if id_len == 0:
        raise WireError("empty ingestor id")
    end = HEADER_SIZE + id_len
    if len(msg) < end:
        raise WireError(f"envelope truncated inside the ingestor id ({len(msg)} < {end} bytes)")
    try:
        ingestor = msg[HEADER_SIZE:end].decode()
    except UnicodeDecodeError:
        raise WireError("ingestor id is not UTF-8") from None
    return kind, ingestor, CATEGORIES[category], conn_id, seq, recv_ns, msg[end:]


def decode_envelope(msg: bytes) -> Envelope:
    """:func:`decode_raw` with names and an :class:`EnvelopeKind` (not for the hot path)."""
    kind, ingestor, category, conn_id, seq, recv_ns, frame = decode_raw(msg)
    return Envelope(EnvelopeKind(kind), ingestor, category, conn_id, seq, recv_ns, frame)


# ---------------------------------------------------------------------------------------------
# 2. Published messages: topics and payloads
# ---------------------------------------------------------------------------------------------

EXCHANGE = "bybit"
CHANNELS: tuple[str, ...] = ("book", "bbo", "trade", "status")
STATES: tuple[str, ...] = ("live", "resyncing", "stale")
_SIDES = ("buy", "sell")

# Bybit symbols are upper-case letters and digits ("BTCUSDT", "1000PEPEUSDT", "BTCUSDH26"),
# with "-" in dated USDC contracts ("BTC-26DEC25"). "." never appears: it is our terminator.
_SYMBOL = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Contract field sets (DESIGN §4). recv_ns is in COMMON_FIELDS' spirit but only present when a
# Bybit frame caused the message, so it is listed per channel (optional for status).
COMMON_FIELDS = frozenset({"channel", "exchange", "category", "symbol", "seq", "pub_ns"})
BOOK_FIELDS = frozenset({"u", "ts", "cts", "depth", "bids", "asks"})
CHANNEL_FIELDS: dict[str, frozenset[str]] = {
    "book": COMMON_FIELDS | {"recv_ns"} | BOOK_FIELDS,
    "bbo": COMMON_FIELDS | {"recv_ns", "u", "ts", "bid", "bid_size", "ask", "ask_size"},
    "trade": COMMON_FIELDS | {"recv_ns", "id", "price", "size", "side", "ts", "block"},
    "status": COMMON_FIELDS | {"state", "reason"},
}
"""Fields every payload of a channel carries (a status may add ``recv_ns``)."""


def _check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or _SYMBOL.fullmatch(symbol) is None:
        raise WireError(f"bad symbol {symbol!r}: expected 1..64 of A-Z a-z 0-9 _ -")


@functools.lru_cache(maxsize=8192)
def _cached_topic(channel: str, category: str, symbol: str) -> bytes:
    if channel not in CHANNELS:
        raise WireError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    if category not in _CATEGORY_CODES:
        raise WireError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    _check_symbol(symbol)
    return f"{channel}.{category}.{symbol}.".encode()


def topic(channel: str, category: str, symbol: str) -> bytes:
    """The ZeroMQ topic frame: ``topic("book", "inverse", "BTCUSD") == b"book.inverse.BTCUSD."``.

    Validated once per distinct topic and then cached, so calling it per message is cheap.
    """
    return _cached_topic(channel, category, symbol)


def subscription(spec: str) -> bytes:
    """The ZeroMQ prefix for a user's topic spec; adds the terminator a full topic needs.

    ``"book.inverse.BTCUSD"`` -> ``b"book.inverse.BTCUSD."`` (that symbol only),
    ``"book.inverse"`` -> ``b"book.inverse."``, ``"book"`` -> ``b"book."``, ``""`` -> ``b""``
    (everything). A spec that already ends in ``"."`` is taken as is. Unknown channels or
    categories and malformed symbols raise :class:`WireError`.
    """
    if spec == "":
        return b""
    body = spec[:-1] if spec.endswith(".") else spec
    parts = body.split(".")
    if len(parts) > 3:
        raise WireError(f"bad topic spec {spec!r}: at most channel.category.SYMBOL")
    if parts[0] not in CHANNELS:
        raise WireError(f"bad topic spec {spec!r}: unknown channel {parts[0]!r}")
    if len(parts) > 1 and parts[1] not in _CATEGORY_CODES:
        raise WireError(f"bad topic spec {spec!r}: unknown category {parts[1]!r}")
    if len(parts) > 2:
        _check_symbol(parts[2])
    return (body + ".").encode()


def parse_topic(raw: bytes) -> tuple[str, str, str]:
    """``b"book.inverse.BTCUSD."`` -> ``("book", "inverse", "BTCUSD")``; WireError otherwise."""
    try:
        text = raw.decode("ascii")
    except (UnicodeDecodeError, AttributeError):
        raise WireError(f"topic {raw!r} is not ASCII bytes") from None
    if not text.endswith("."):
        raise WireError(f"topic {raw!r} lacks the '.' terminator")
    parts = text[:-1].split(".")
    if len(parts) != 3:
        raise WireError(f"topic {raw!r} is not channel.category.SYMBOL.")
    channel, category, symbol = parts
    if channel not in CHANNELS:
        raise WireError(f"topic {raw!r}: unknown channel {channel!r}")
    if category not in _CATEGORY_CODES:
        raise WireError(f"topic {raw!r}: unknown category {category!r}")
    _check_symbol(symbol)
    return channel, category, symbol


def _to_json_array(obj: object) -> list[object]:
    # orjson serializes list and tuple natively; this catches other sequences of levels.
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes | bytearray):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def _dumps(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload, default=_to_json_array)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise WireError(f"cannot encode {payload.get('channel')} payload: {exc}") from None


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
    """A ``book`` payload: the full top-``depth`` book after one Bybit frame.

    ``bids`` descending and ``asks`` ascending, ``(price, size)`` strings exactly as Bybit
    sent them. ``cts`` is null when Bybit's frame had none.
    """
    return _dumps(
        {
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
    )


def book_template(category: str, symbol: str) -> str:
    """The ``book`` payload of one topic as a ``%`` template: the builder's hot path.

    ``(template % (seq, pub_ns, recv_ns, u, ts, cts, depth, bids, asks)).encode()`` is the
    JSON object :func:`encode_book` makes, field for field, where ``cts`` is an int or the
    text ``"null"``, and ``bids``/``asks`` are the array bodies of
    :meth:`mdgw.core.book.OrderBook.top_json`. One ``%`` over text held ready instead of a
    dict and orjson: 1.6 instead of 2.5 µs for a top-25 book. ``category`` and ``symbol``
    are validated here, once per topic; they cannot hold ``%``, ``"`` or ``\\``.
    """
    topic(CHANNELS[0], category, symbol)  # validates both (WireError), cached
    return (
        f'{{"channel":"book","exchange":"{EXCHANGE}","category":"{category}",'
        f'"symbol":"{symbol}","seq":%d,"pub_ns":%d,"recv_ns":%d,"u":%d,"ts":%d,'
        '"cts":%s,"depth":%d,"bids":[%s],"asks":[%s]}'
    )


def encode_bbo(
    category: str,
    symbol: str,
    *,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    u: int,
    ts: int,
    bid: str | None,
    bid_size: str | None,
    ask: str | None,
    ask_size: str | None,
) -> bytes:
    """A ``bbo`` payload (best bid and offer); a side is null while that side is empty."""
    return _dumps(
        {
            "channel": "bbo",
            "exchange": EXCHANGE,
            "category": category,
            "symbol": symbol,
            "seq": seq,
            "pub_ns": pub_ns,
            "recv_ns": recv_ns,
            "u": u,
            "ts": ts,
            "bid": bid,
            "bid_size": bid_size,
            "ask": ask,
            "ask_size": ask_size,
        }
    )


def encode_trade(
    category: str,
    symbol: str,
    *,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    trade_id: str,
    price: str,
    size: str,
    side: str,
    ts: int,
    block: bool,
) -> bytes:
    """A ``trade`` payload; ``side`` is the taker side, ``"buy"`` or ``"sell"``."""
    if side not in _SIDES:
        raise WireError(f"trade side must be 'buy' or 'sell', got {side!r}")
    return _dumps(
        {
            "channel": "trade",
            "exchange": EXCHANGE,
            "category": category,
            "symbol": symbol,
            "seq": seq,
            "pub_ns": pub_ns,
            "recv_ns": recv_ns,
            "id": trade_id,
            "price": price,
            "size": size,
            "side": side,
            "ts": ts,
            "block": block,
        }
    )


def encode_status(
    category: str,
    symbol: str,
    *,
    seq: int,
    pub_ns: int,
    state: str,
    reason: str,
    recv_ns: int | None = None,
) -> bytes:
    """A ``status`` payload; ``recv_ns`` only when a Bybit frame caused the change."""
    if state not in STATES:
        raise WireError(f"unknown state {state!r}; expected one of {STATES}")
    payload: dict[str, Any] = {
        "channel": "status",
        "exchange": EXCHANGE,
        "category": category,
        "symbol": symbol,
        "seq": seq,
        "pub_ns": pub_ns,
    }
    if recv_ns is not None:
        payload["recv_ns"] = recv_ns
    payload["state"] = state
    payload["reason"] = reason
    return _dumps(payload)


def _loads_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        raise WireError(f"{what} is not valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise WireError(f"{what} is not a JSON object")
    return obj


def decode_payload(data: bytes) -> dict[str, Any]:
    """Parse a published payload and check its channel, category and contract fields.

    Extra fields are allowed (the contract may grow); missing ones raise :class:`WireError`.
    """
    payload = _loads_object(data, "payload")
    channel = payload.get("channel")
    required = CHANNEL_FIELDS.get(channel) if isinstance(channel, str) else None
    if required is None:
        raise WireError(f"payload has unknown channel {channel!r}")
    if not required.issubset(payload):
        raise WireError(f"{channel} payload lacks {sorted(required - payload.keys())}")
    category = payload["category"]
    if not isinstance(category, str) or category not in _CATEGORY_CODES:
        raise WireError(f"payload has unknown category {category!r}")
    return payload


# ---------------------------------------------------------------------------------------------
# 3. Control and snapshot framing
# ---------------------------------------------------------------------------------------------

RESYNC = b"resync"
MAX_RESYNC_TOPIC_LEN = 256


class ResyncRequest(NamedTuple):
    """Ask the ingestor owning ``topic`` to unsubscribe and resubscribe it (fresh snapshot).

    ``reconnect``: the gentle way did not bring a snapshot in time; replace the whole
    connection that carries the topic (every topic on it gets a fresh snapshot).
    ``ingestor``/``conn_id``: the one source asked to serve it (when several carry the
    topic); ``""`` means any ingestor owning the topic, ``0`` any of its connections.
    """

    category: str
    topic: str  # Bybit's topic, e.g. "orderbook.50.BTCUSDT"
    reason: str
    reconnect: bool = False
    ingestor: str = ""
    conn_id: int = 0


def _check_bybit_topic(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_RESYNC_TOPIC_LEN:
        raise WireError(f"resync topic must be 1..{MAX_RESYNC_TOPIC_LEN} characters")
    if not value.isprintable() or " " in value:
        raise WireError(f"resync topic {value!r} has spaces or control characters")
    return value


def encode_resync(
    category: str,
    bybit_topic: str,
    reason: str,
    *,
    reconnect: bool = False,
    ingestor: str = "",
    conn_id: int = 0,
) -> list[bytes]:
    """The control message ``[b"resync", {"category", "topic", "reason", "reconnect"}]``,
    plus ``"ingestor"`` (and ``"conn_id"``) when one source is asked."""
    category_code(category)
    _check_bybit_topic(bybit_topic)
    if not 0 <= conn_id <= 0xFFFFFFFF:
        raise WireError(f"conn_id {conn_id} out of range")
    body: dict[str, Any] = {
        "category": category,
        "topic": bybit_topic,
        "reason": reason,
        "reconnect": reconnect,
    }
    if ingestor:
        body["ingestor"] = ingestor
        if conn_id:
            body["conn_id"] = conn_id
    return [RESYNC, orjson.dumps(body)]


def decode_resync(frames: Sequence[bytes]) -> ResyncRequest:
    """Parse a control message; :class:`WireError` unless it is a well-formed resync."""
    if len(frames) != 2:
        raise WireError(f"control message has {len(frames)} frames, expected 2")
    if frames[0] != RESYNC:
        raise WireError(f"unknown control message {bytes(frames[0])[:32]!r}")
    body = _loads_object(frames[1], "resync body")
    category, bybit_topic, reason = body.get("category"), body.get("topic"), body.get("reason")
    if not isinstance(category, str) or category not in _CATEGORY_CODES:
        raise WireError(f"resync has unknown category {category!r}")
    if not isinstance(reason, str):
        raise WireError("resync reason must be a string")
    reconnect = body.get("reconnect", False)
    if type(reconnect) is not bool:
        raise WireError("resync reconnect must be a boolean")
    ingestor = body.get("ingestor", "")
    if not isinstance(ingestor, str) or len(ingestor) > 255:
        raise WireError("resync ingestor must be a string of at most 255 characters")
    conn_id = body.get("conn_id", 0)
    if type(conn_id) is not int or not 0 <= conn_id <= 0xFFFFFFFF:
        raise WireError("resync conn_id must be an integer from 0 to 2**32-1")
    return ResyncRequest(
        category, _check_bybit_topic(bybit_topic), reason, reconnect, ingestor, conn_id
    )


END = b"END"
ERROR = b"ERROR"
MAX_PREFIX_LEN = 256


def encode_snapshot_request(spec: str) -> bytes:
    """The one-frame snapshot request for a topic spec (normalized like :func:`subscription`)."""
    prefix = subscription(spec)
    if len(prefix) > MAX_PREFIX_LEN:
        raise WireError(f"snapshot prefix longer than {MAX_PREFIX_LEN} bytes")
    return prefix


def decode_snapshot_request(frame: bytes) -> bytes:
    """The topic prefix a client asked for, normalized like :func:`subscription`.

    ``b"book.inverse.BTCUSD"`` and ``b"book.inverse.BTCUSD."`` both give the terminated
    prefix, so a snapshot for one symbol never includes another that it prefixes.
    """
    if len(frame) > MAX_PREFIX_LEN:
        raise WireError(f"snapshot request of {len(frame)} bytes (max {MAX_PREFIX_LEN})")
    try:
        spec = bytes(frame).decode()
    except UnicodeDecodeError:
        raise WireError("snapshot request is not UTF-8") from None
    if not spec.isprintable():
        raise WireError(f"snapshot request {spec!r} has control characters")
    return subscription(spec)


def split_snapshot_request(frames: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    """ROUTER side: ``(routing envelope, request frame)`` from a received multipart message.

    The envelope is everything before the last frame: ``[identity, b""]`` from a REQ client,
    ``[identity]`` from a DEALER that sends the bare request. Reply with
    ``envelope + encode_snapshot_reply(...)`` so either kind of client gets the reply.
    """
    if len(frames) < 2:
        raise WireError(f"routed snapshot request has {len(frames)} frames, expected >= 2")
    return list(frames[:-1]), frames[-1]


def encode_snapshot_error(reason: str) -> list[bytes]:
    """The reply to a request the service refuses: ``[b"ERROR", {"reason": ...}]``.

    A REQ client waits for exactly one reply, so a bad request must still be answered.
    """
    return [ERROR, orjson.dumps({"reason": reason})]


def encode_snapshot_reply(items: Sequence[tuple[bytes, bytes]], prefix: bytes) -> list[bytes]:
    """``[topic, payload]`` for each item, then ``[b"END", {"count": n, "prefix": ...}]``."""
    try:
        prefix_text = prefix.decode()
    except UnicodeDecodeError:
        raise WireError("snapshot prefix is not UTF-8") from None
    frames: list[bytes] = []
    for item_topic, payload in items:
        frames.append(item_topic)
        frames.append(payload)
    frames.append(END)
    frames.append(orjson.dumps({"count": len(items), "prefix": prefix_text}))
    return frames


def decode_snapshot_reply(frames: Sequence[bytes]) -> list[tuple[bytes, dict[str, Any]]]:
    """Check a snapshot reply and return its ``(topic, payload)`` pairs.

    Raises :class:`WireError` with the service's reason for an ``ERROR`` reply. Checks the
    end marker, that ``count`` matches the pairs, that each topic is well formed,
    matches the requested prefix and agrees with its payload's channel, category and symbol.
    """
    if len(frames) == 2 and frames[0] == ERROR:
        refusal = _loads_object(frames[1], "snapshot ERROR body").get("reason")
        raise WireError(f"snapshot request refused: {refusal}")
    if len(frames) < 2 or len(frames) % 2:
        raise WireError(f"snapshot reply has {len(frames)} frames; expected pairs ending in END")
    if frames[-2] != END:
        raise WireError("snapshot reply does not end with the END marker")
    end = _loads_object(frames[-1], "snapshot END body")
    count, prefix = end.get("count"), end.get("prefix")
    if not isinstance(count, int) or isinstance(count, bool) or not isinstance(prefix, str):
        raise WireError("snapshot END body needs an integer count and a string prefix")
    n = len(frames) // 2 - 1
    if count != n:
        raise WireError(f"snapshot END says {count} items but the reply has {n}")
    prefix_bytes = prefix.encode()
    items: list[tuple[bytes, dict[str, Any]]] = []
    for i in range(0, len(frames) - 2, 2):
        item_topic = bytes(frames[i])
        if not item_topic.startswith(prefix_bytes):
            raise WireError(f"snapshot item {item_topic!r} does not match prefix {prefix!r}")
        channel, category, symbol = parse_topic(item_topic)
        payload = decode_payload(frames[i + 1])
        if (payload["channel"], payload["category"], payload["symbol"]) != (
            channel,
            category,
            symbol,
        ):
            raise WireError(f"snapshot item {item_topic!r} carries another topic's payload")
        items.append((item_topic, payload))
    return items

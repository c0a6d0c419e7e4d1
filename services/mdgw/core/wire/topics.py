"""Published messages (book_builder PUB -> consumers): topics and payloads.

A message is ``[topic, payload]``. Topics are ``{channel}.{category}.{SYMBOL}.``; the trailing
``"."`` is a terminator, so the ZeroMQ prefix subscription ``book.inverse.BTCUSD.`` does not
receive ``book.inverse.BTCUSDH26.``. Payloads are one JSON object with the contract fields of
docs/wire-format.md §2; keep the two in step.

Payload encoders take everything after ``(category, symbol)`` by keyword: ``seq``,
``pub_ns``, ``recv_ns``, ``u``, ``ts`` and ``cts`` are adjacent ints, too easy to swap.
Decoders raise :class:`~mdgw.core.errors.WireError` and nothing else on bad input.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

import orjson

from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.errors import WireError

__all__ = [
    "BOOK_FIELDS",
    "CHANNELS",
    "CHANNEL_FIELDS",
    "COMMON_FIELDS",
    "EXCHANGE",
    "EXCHANGE_STATUS_TOPIC",
    "NOTICE_FIELDS",
    "RENDERS_IN_C",
    "STATES",
    "BboTemplate",
    "BookTemplate",
    "GatewayTopic",
    "decode_payload",
    "encode_bbo",
    "encode_exchange_status",
    "encode_status",
    "encode_trade",
    "is_topic_symbol",
    "json_object",
    "parse_gateway_topic",
    "stamp",
    "subscription",
    "topic",
]

EXCHANGE = "bybit"
CHANNELS: tuple[str, ...] = ("book", "bbo", "trade", "status", "rpi")
EXCHANGE_STATUS_TOPIC = b"status.bybit."
"""Exchange-wide ``status``: Bybit's ``system.status`` notices (no category, no symbol)."""
NOTICE_FIELDS = frozenset({"id", "title", "state", "begin", "end"})
STATES: tuple[str, ...] = ("live", "resyncing", "stale")
_SIDES = ("buy", "sell")

# head, depth_text, seq, pub_ns, recv_ns, frame_ints (u, bybit_seq, ts, cts), depth, bids, asks
_BookC = Callable[
    [str, str, int, int, int, tuple[int, ...], int, list[str], list[str]], bytes | None
]
_BboC = Callable[
    [str, int, int, int, int, int, tuple[str, str] | None, tuple[str, str] | None, int, int | str],
    bytes | None,
]
# book_head, depth_text, bbo_head, seq, bbo_seq, pub_ns, recv_ns, frame_ints (u, bybit_seq,
# ts, cts), depth, bids, asks, bid, ask, bbo_depth
_BookBboC = Callable[
    [
        str,
        str,
        str,
        int,
        int,
        int,
        int,
        tuple[int, ...],
        int,
        list[str],
        list[str],
        tuple[str, str] | None,
        tuple[str, str] | None,
        int | str,
    ],
    tuple[bytes, bytes] | None,
]


def _c_renderers() -> tuple[_BookC | None, _BboC | None, _BookBboC | None]:
    # Imported here, not at the top, so that its absence is one answer (PLC0415).
    try:
        from mdgw.core._render import bbo, book, book_bbo  # noqa: PLC0415
    except ImportError:
        return None, None, None
    return book, bbo, book_bbo


# The templates' payloads written in C (core/_render.c), built and served with the compiled
# hot path (mdgw.compiled); absent in the pure-Python build, where the f-strings below run
# alone. Final: a compiled module keeps them in C statics, not in its globals dict.
# tests/core/test_render_payloads.py holds the C code to the f-strings.
_RENDERERS: Final = _c_renderers()  # one import, all three functions or none
_BOOK_C: Final = _RENDERERS[0]
_BBO_C: Final = _RENDERERS[1]
_BOOK_BBO_C: Final = _RENDERERS[2]
RENDERS_IN_C: Final = _BOOK_C is not None and _BBO_C is not None and _BOOK_BBO_C is not None
"""Whether :meth:`BookTemplate.render_texts`, :meth:`BookTemplate.render_with_bbo` and
:meth:`BboTemplate.render` write the payloads in C (the compiled build). The builder then
hands them the ints and the book's level texts; without it, it renders :func:`stamp`'s text
once for both payloads."""

# What a topic's symbol may hold: a superset of how Bybit spells symbols
# (bybit_spec.SYMBOL_PATTERN), so a frame is not refused for a spelling Bybit might adopt.
# "." never appears: it is our terminator; nor do "%", '"' or "\\" (see BookTemplate).
_TOPIC_SYMBOL = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Contract field sets (docs/wire-format.md). recv_ns is in COMMON_FIELDS' spirit but only
# present when a Bybit frame caused the message, so it is listed per channel (optional for
# status).
COMMON_FIELDS = frozenset({"channel", "exchange", "category", "symbol", "seq", "pub_ns"})
BOOK_FIELDS = frozenset({"u", "ts", "cts", "depth", "bids", "asks"})
CHANNEL_FIELDS: dict[str, frozenset[str]] = {
    "book": COMMON_FIELDS | {"recv_ns"} | BOOK_FIELDS,
    "bbo": COMMON_FIELDS | {"recv_ns", "u", "ts", "bid", "bid_size", "ask", "ask_size"},
    "trade": COMMON_FIELDS | {"recv_ns", "id", "price", "size", "side", "ts", "block"},
    "status": COMMON_FIELDS | {"state", "reason"},
    "rpi": COMMON_FIELDS | {"recv_ns"} | BOOK_FIELDS,
}
"""Fields every payload of a channel carries (a status may add ``recv_ns``)."""


@functools.lru_cache(maxsize=16384)
def is_topic_symbol(symbol: str) -> bool:
    """Whether a gateway topic can carry ``symbol`` (1..64 of ``A-Z a-z 0-9 _ -``). Cached."""
    return _TOPIC_SYMBOL.fullmatch(symbol) is not None


def _check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or not is_topic_symbol(symbol):
        raise WireError(f"bad symbol {symbol!r}: expected 1..64 of A-Z a-z 0-9 _ -")


@functools.lru_cache(maxsize=8192)
def _cached_topic(channel: str, category: str, symbol: str) -> bytes:
    if channel not in CHANNELS:
        raise WireError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    if category not in CATEGORIES:
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
    if body == "status.bybit":
        return EXCHANGE_STATUS_TOPIC
    parts = body.split(".")
    if len(parts) > 3:
        raise WireError(f"bad topic spec {spec!r}: at most channel.category.SYMBOL")
    if parts[0] not in CHANNELS:
        raise WireError(f"bad topic spec {spec!r}: unknown channel {parts[0]!r}")
    if len(parts) > 1 and parts[1] not in CATEGORIES:
        raise WireError(f"bad topic spec {spec!r}: unknown category {parts[1]!r}")
    if len(parts) > 2:
        _check_symbol(parts[2])
    return (body + ".").encode()


class GatewayTopic(NamedTuple):
    """A published topic, parsed: ``b"book.inverse.BTCUSD."``."""

    channel: str
    category: str
    symbol: str


def parse_gateway_topic(raw: bytes) -> GatewayTopic:
    """``b"book.inverse.BTCUSD."`` -> ``GatewayTopic("book", "inverse", "BTCUSD")``.

    :class:`WireError` for anything that is not a well-formed gateway topic.
    """
    try:
        text = raw.decode("ascii")
    except (UnicodeDecodeError, AttributeError):
        raise WireError(f"topic {raw!r} is not ASCII bytes") from None
    if not text.endswith("."):
        raise WireError(f"topic {raw!r} lacks the '.' terminator")
    if raw == EXCHANGE_STATUS_TOPIC:
        return GatewayTopic("status", EXCHANGE, "")
    parts = text[:-1].split(".")
    if len(parts) != 3:
        raise WireError(f"topic {raw!r} is not channel.category.SYMBOL.")
    channel, category, symbol = parts
    if channel not in CHANNELS:
        raise WireError(f"topic {raw!r}: unknown channel {channel!r}")
    if category not in CATEGORIES:
        raise WireError(f"topic {raw!r}: unknown category {category!r}")
    _check_symbol(symbol)
    return GatewayTopic(channel, category, symbol)


def _dumps(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise WireError(f"cannot encode {payload.get('channel')} payload: {exc}") from None


def _head(  # noqa: PLR0917 (the payload's first fields, in their order)
    channel: str, category: str, symbol: str, seq: int, pub_ns: int, recv_ns: int | None
) -> dict[str, Any]:
    """The fields every per-symbol payload starts with, in the published order (``recv_ns``
    left out when None: a ``status`` no Bybit frame caused)."""
    head: dict[str, Any] = {
        "channel": channel,
        "exchange": EXCHANGE,
        "category": category,
        "symbol": symbol,
        "seq": seq,
        "pub_ns": pub_ns,
    }
    if recv_ns is not None:
        head["recv_ns"] = recv_ns
    return head


class BookTemplate:
    """The ``book`` payload of one topic, held ready as text: the builder's hot path.

    This object owns the ``book`` payload's shape: its field order, ``"null"`` for a frame
    without ``cts`` (Bybit frames before Dec 2023; :class:`~mdgw.core.bybit.BookFrame` carries
    0 then) and ``bids``/``asks`` as the array bodies of
    :meth:`mdgw.core.book.OrderBook.top_json`. :meth:`render` makes the same JSON object, field
    for field, as encoding the dict of docs/wire-format.md with orjson; one f-string after
    the topic's head held ready is cheaper than building that dict per book
    (docs/performance.md). ``category`` and ``symbol`` are validated here, once per topic,
    so they cannot hold ``"`` or ``\\``. ``channel`` is ``"book"`` or ``"rpi"`` (the RPI
    book has the same shape); ``full`` makes the ``orderbook.full`` book, whose ``depth``
    is ``"full"``.

    :meth:`render_texts` takes the book's level texts as the book holds them; in the compiled
    build it writes the payload in C (``core/_render.c``, the f-string of
    :meth:`render_stamped` as one ``bytes``, nothing in between), and falls back to
    :meth:`render` for anything the C code does not write exactly as the f-string would.
    """

    __slots__ = ("_depth", "_head")

    def __init__(
        self, category: str, symbol: str, channel: str = "book", *, full: bool = False
    ) -> None:
        topic(channel, category, symbol)  # validates all three (WireError), cached
        self._head = (
            f'{{"channel":"{channel}","exchange":"{EXCHANGE}","category":"{category}",'
            f'"symbol":"{symbol}","seq":'
        )
        # The full book says "depth":"full" whatever depth render() is given.
        self._depth = '"full"' if full else ""

    def render(  # noqa: PLR0917 (positional on purpose: runs once per published book)
        self,
        seq: int,
        pub_ns: int,
        recv_ns: int,
        u: int,
        ts: int,
        cts: int,
        depth: int,
        bids: str,
        asks: str,
    ) -> bytes:
        """The payload; ``cts`` 0 means the frame had none; ``bids``/``asks`` from ``top_json``."""
        return self.render_stamped(seq, stamp(pub_ns, recv_ns, u, ts), cts, depth, bids, asks)

    def render_texts(  # noqa: PLR0917 (positional on purpose: runs once per published book)
        self,
        seq: int,
        pub_ns: int,
        recv_ns: int,
        frame_ints: tuple[int, ...],
        depth: int,
        bid_texts: list[str],
        ask_texts: list[str],
    ) -> bytes:
        """:meth:`render` with the book's level texts as it holds them
        (:meth:`mdgw.core.book.SyncedBook.level_texts`), the first ``depth`` of each side
        published, ``frame_ints`` the frame's ``(u, bybit_seq, ts, cts)``
        (:attr:`mdgw.core.bybit_frames.BookFrame.ints`, passed to C as it is): in the
        compiled build one ``bytes`` written in C (``core/_render.c``), no str, join or
        encode on the way; the same bytes by :meth:`render` otherwise."""
        render_c = _BOOK_C
        if render_c is not None:
            payload = render_c(
                self._head,
                self._depth,
                seq,
                pub_ns,
                recv_ns,
                frame_ints,
                depth,
                bid_texts,
                ask_texts,
            )
            if payload is not None:
                return payload
        u, _, ts, cts = frame_ints
        return self.render(
            seq,
            pub_ns,
            recv_ns,
            u,
            ts,
            cts,
            depth,
            ",".join(bid_texts[:depth]),
            ",".join(ask_texts[:depth]),
        )

    def render_with_bbo(  # noqa: PLR0917 (positional on purpose: runs once per published frame)
        self,
        bbo: BboTemplate,
        seq: int,
        bbo_seq: int,
        pub_ns: int,
        recv_ns: int,
        frame_ints: tuple[int, ...],
        depth: int,
        bid_texts: list[str],
        ask_texts: list[str],
        bid: tuple[str, str] | None,
        ask: tuple[str, str] | None,
        bbo_depth: int | str,
    ) -> tuple[bytes, bytes]:
        """:meth:`render_texts` and ``bbo``'s :meth:`BboTemplate.render` of one frame, the
        bytes of each, ``frame_ints`` the frame's ``(u, bybit_seq, ts, cts)``
        (:attr:`mdgw.core.bybit_frames.BookFrame.ints`): in the compiled build one C call
        (``core/_render.c``), which writes ``pub_ns``, ``recv_ns``, ``u`` and ``ts`` once for
        the two payloads and takes each int once (on ``orderbook.1`` nearly every frame
        publishes both, and two calls box and write those four ints twice), and the frame's
        four as the tuple of objects its decode made, not boxed again (docs/performance.md);
        the two methods otherwise."""
        render_c = _BOOK_BBO_C
        if render_c is not None:
            payloads = render_c(
                self._head,
                self._depth,
                bbo._head,
                seq,
                bbo_seq,
                pub_ns,
                recv_ns,
                frame_ints,
                depth,
                bid_texts,
                ask_texts,
                bid,
                ask,
                bbo_depth,
            )
            if payloads is not None:
                return payloads
        u, bybit_seq, ts, _ = frame_ints
        return (
            self.render_texts(seq, pub_ns, recv_ns, frame_ints, depth, bid_texts, ask_texts),
            bbo.render(bbo_seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq, bbo_depth),
        )

    def render_stamped(  # noqa: PLR0917 (positional on purpose: runs once per published book)
        self, seq: int, stamped: str, cts: int, depth: int, bids: str, asks: str
    ) -> bytes:
        """:meth:`render` with ``pub_ns``, ``recv_ns``, ``u`` and ``ts`` as :func:`stamp`'s text,
        which the builder renders once for a frame's ``book`` and ``bbo``."""
        # An f-string over literal parts rather than `%` over a template held per topic: the
        # compiled build turns it into one string build (no format parsing per book).
        cts_text = str(cts) if cts else "null"
        depth_text = self._depth or str(depth)
        return (
            f'{self._head}{seq},"pub_ns":{stamped},"cts":{cts_text},"depth":{depth_text},'
            f'"bids":[{bids}],"asks":[{asks}]}}'
        ).encode()


def stamp(pub_ns: int, recv_ns: int, u: int, ts: int) -> str:
    """The text of ``pub_ns``, ``recv_ns``, ``u`` and ``ts`` as both the ``book`` and the ``bbo``
    payload carry them, after ``"pub_ns":``: ``'1,"recv_ns":2,"u":3,"ts":4'``.

    Rendered once per published frame and shared by the two payloads: turning four
    19-digit ints into text is most of what a ``bbo`` costs (docs/performance.md). The
    compiled build writes the four ints into each payload in C instead (``core/_render.c``).
    """
    return f'{pub_ns},"recv_ns":{recv_ns},"u":{u},"ts":{ts}'


class BboTemplate:
    """The ``bbo`` payload of one topic, held ready as text: :class:`BookTemplate`'s way for
    the best bid and offer, which the builder renders whenever the best changes (on
    ``orderbook.1``, nearly every frame).

    :meth:`render` makes the bytes :func:`encode_bbo` makes (orjson over the payload's dict,
    field for field) for prices and sizes the book took from Bybit: decimal strings, which
    need no escaping (:func:`mdgw.core.bybit.parse_levels` lets nothing else through).
    ``category`` and ``symbol`` are validated here, once per topic. In the compiled build
    :meth:`render` writes :meth:`render_stamped`'s f-string in C (``core/_render.c``), as
    :class:`BookTemplate` does.
    """

    __slots__ = ("_head",)

    def __init__(self, category: str, symbol: str) -> None:
        topic("bbo", category, symbol)  # validates both (WireError), cached
        self._head = (
            f'{{"channel":"bbo","exchange":"{EXCHANGE}","category":"{category}",'
            f'"symbol":"{symbol}","seq":'
        )

    def render(  # noqa: PLR0917 (positional on purpose: runs once per published bbo)
        self,
        seq: int,
        pub_ns: int,
        recv_ns: int,
        u: int,
        ts: int,
        bid: tuple[str, str] | None,
        ask: tuple[str, str] | None,
        bybit_seq: int,
        depth: int | str,
    ) -> bytes:
        """The payload; ``bid``/``ask`` are ``(price, size)`` or None for an empty side,
        ``depth`` the Bybit depth of the frame (an int, or ``"full"``). In the compiled build
        one ``bytes`` written in C (``core/_render.c``), the same bytes."""
        render_c = _BBO_C
        if render_c is not None:
            payload = render_c(self._head, seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq, depth)
            if payload is not None:
                return payload
        return self.render_stamped(seq, stamp(pub_ns, recv_ns, u, ts), bid, ask, bybit_seq, depth)

    def render_stamped(  # noqa: PLR0917 (positional on purpose: runs once per published bbo)
        self,
        seq: int,
        stamped: str,
        bid: tuple[str, str] | None,
        ask: tuple[str, str] | None,
        bybit_seq: int,
        depth: int | str,
    ) -> bytes:
        """:meth:`render` with ``pub_ns``, ``recv_ns``, ``u`` and ``ts`` as :func:`stamp`'s text."""
        if bid is None:
            bid_text = '"bid":null,"bid_size":null'
        else:
            bid_text = f'"bid":"{bid[0]}","bid_size":"{bid[1]}"'
        if ask is None:
            ask_text = '"ask":null,"ask_size":null'
        else:
            ask_text = f'"ask":"{ask[0]}","ask_size":"{ask[1]}"'
        depth_text = f'"{depth}"' if isinstance(depth, str) else str(depth)
        return (
            f'{self._head}{seq},"pub_ns":{stamped},{bid_text},{ask_text},'
            f'"bybit_seq":{bybit_seq},"depth":{depth_text}}}'
        ).encode()


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
    bybit_seq: int | None = None,
    depth: int | str | None = None,
) -> bytes:
    """A ``bbo`` payload (best bid and offer); a side is null while that side is empty.

    ``bybit_seq`` (Bybit's cross sequence of the frame) and ``depth`` (the Bybit depth topic
    it came from) are added when given: with a symbol's depth 1 fused into its bbo they say
    which stream the top of book came from.
    """
    payload = _head("bbo", category, symbol, seq, pub_ns, recv_ns)
    payload.update(u=u, ts=ts, bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size)
    if bybit_seq is not None:
        payload["bybit_seq"] = bybit_seq
    if depth is not None:
        payload["depth"] = depth
    return _dumps(payload)


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
    bybit_seq: int | None = None,
    rpi: bool | None = None,
    option: tuple[str, str, str, str] | None = None,
) -> bytes:
    """A ``trade`` payload; ``side`` is the taker side, ``"buy"`` or ``"sell"``.

    ``bybit_seq`` (Bybit's cross sequence) and ``rpi`` (an RPI trade) are added when given;
    ``option`` adds an option trade's ``mark_price``, ``index_price``, ``mark_iv``, ``iv``.
    """
    if side not in _SIDES:
        raise WireError(f"trade side must be 'buy' or 'sell', got {side!r}")
    payload = _head("trade", category, symbol, seq, pub_ns, recv_ns)
    payload.update(id=trade_id, price=price, size=size, side=side, ts=ts, block=block)
    if bybit_seq is not None:
        payload["bybit_seq"] = bybit_seq
    if rpi is not None:
        payload["rpi"] = rpi
    if option is not None:
        payload["mark_price"], payload["index_price"], payload["mark_iv"], payload["iv"] = option
    return _dumps(payload)


def encode_status(
    category: str,
    symbol: str,
    *,
    seq: int,
    pub_ns: int,
    state: str,
    reason: str,
    recv_ns: int | None = None,
    feed: str | None = None,
) -> bytes:
    """A ``status`` payload; ``recv_ns`` only when a Bybit frame caused the change.

    ``feed`` names the published channel whose state this is, when given: ``book``,
    ``rpi``, or ``bbo`` (a depth-1 book that only feeds a fused ``bbo``).
    """
    if state not in STATES:
        raise WireError(f"unknown state {state!r}; expected one of {STATES}")
    payload = _head("status", category, symbol, seq, pub_ns, recv_ns)
    payload["state"] = state
    payload["reason"] = reason
    if feed is not None:
        payload["feed"] = feed
    return _dumps(payload)


def encode_exchange_status(
    *,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    notice_id: str,
    title: str,
    state: str,
    begin: int,
    end: int,
    href: str,
    service_types: Sequence[int],
    product: Sequence[int],
    maintain_type: str,
    env: str,
) -> bytes:
    """A ``status`` payload on :data:`EXCHANGE_STATUS_TOPIC`: one Bybit ``system.status``
    notice (maintenance or incident), exchange-wide: ``scope`` is ``"exchange"`` and there
    is no category or symbol. ``state`` is Bybit's (``scheduled``, ``ongoing``,
    ``completed``, ``canceled``); ``begin``/``end`` are ms."""
    return _dumps(
        {
            "channel": "status",
            "exchange": EXCHANGE,
            "scope": "exchange",
            "seq": seq,
            "pub_ns": pub_ns,
            "recv_ns": recv_ns,
            "id": notice_id,
            "title": title,
            "state": state,
            "begin": begin,
            "end": end,
            "href": href,
            "service_types": list(service_types),
            "product": list(product),
            "maintain_type": maintain_type,
            "env": env,
        }
    )


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` parsed as one JSON object; :class:`WireError` naming ``what`` otherwise."""
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
    payload = json_object(data, "payload")
    channel = payload.get("channel")
    if channel == "status" and payload.get("scope") == "exchange":
        notice = NOTICE_FIELDS | {"channel", "exchange", "seq", "pub_ns"}
        if not notice.issubset(payload):
            raise WireError(f"status payload lacks {sorted(notice - payload.keys())}")
        return payload
    required = CHANNEL_FIELDS.get(channel) if isinstance(channel, str) else None
    if required is None:
        raise WireError(f"payload has unknown channel {channel!r}")
    if not required.issubset(payload):
        raise WireError(f"{channel} payload lacks {sorted(required.difference(payload))}")
    category = payload["category"]
    if not isinstance(category, str) or category not in CATEGORIES:
        raise WireError(f"payload has unknown category {category!r}")
    return payload

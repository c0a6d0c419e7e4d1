"""Bybit v5 public topic names: building them, and parsing the order-book ones.

``orderbook.{depth}.{symbol}``, ``orderbook.rpi.{symbol}``, ``orderbook.full.{symbol}``,
``publicTrade.{symbol}`` (``publicTrade.{baseCoin}`` for options). The prefixes and depths
themselves are Bybit facts defined in :mod:`mdgw.core.bybit_spec`.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from mdgw.core.bybit_spec import FULL_DEPTH, FULL_TOPIC_PREFIX, RPI_TOPIC_PREFIX
from mdgw.core.wire.topics import is_topic_symbol

__all__ = [
    "MAX_TOPIC_LEN",
    "OrderbookTopic",
    "book_topic",
    "full_topic",
    "option_base",
    "orderbook_topic",
    "parse_book_topic",
    "parse_orderbook_topic",
    "rpi_topic",
    "topic_of",
    "trade_topic",
    "trade_topic_for",
]

MAX_TOPIC_LEN: Final = 256
_TOPIC_KEY: Final = b'"topic":"'


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


class OrderbookTopic(NamedTuple):
    """A parsed Bybit ``orderbook.{depth}.{symbol}`` topic."""

    symbol: str
    depth: int


def parse_orderbook_topic(topic: str) -> OrderbookTopic | None:
    """``"orderbook.50.BTCUSDT"`` -> ``OrderbookTopic("BTCUSDT", 50)``; None if malformed.

    The symbol must fit a gateway topic (:func:`mdgw.core.wire.is_topic_symbol`). Not
    cached: the decoders reach it through :func:`parse_book_topic`'s memo.
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


# parse_book_topic's answers by topic: one dict lookup a frame for a topic seen before. Only
# topics it parsed are kept (a refused one is parsed again each time, and refused again),
# and at most _BOOK_TOPIC_MEMO_MAX of them, then it starts again: a stream of bad or
# ever-new topics cannot grow it. Final, so that the compiled build reads both from C
# statics rather than through the module's dict (docs/performance.md, "Follow-up: the
# `orderbook.1` decode").
_BOOK_TOPIC_MEMO: Final[dict[str, OrderbookTopic]] = {}
_BOOK_TOPIC_MEMO_MAX: Final = 16384


def parse_book_topic(topic: str) -> OrderbookTopic | None:
    """:func:`parse_orderbook_topic`, and ``orderbook.full.{symbol}`` as depth FULL_DEPTH.

    Memoised (see ``_BOOK_TOPIC_MEMO``): topics repeat, one per book.
    """
    if len(topic) > MAX_TOPIC_LEN:  # before the lookup, which would hash all of it
        return None
    parsed = _BOOK_TOPIC_MEMO.get(topic)
    if parsed is not None:
        return parsed
    parsed = parse_orderbook_topic(topic)
    if parsed is None:
        if not topic.startswith(FULL_TOPIC_PREFIX):
            return None
        full_symbol = topic[len(FULL_TOPIC_PREFIX) :]
        if not is_topic_symbol(full_symbol):
            return None
        parsed = OrderbookTopic(full_symbol, FULL_DEPTH)
    if len(_BOOK_TOPIC_MEMO) >= _BOOK_TOPIC_MEMO_MAX:
        _BOOK_TOPIC_MEMO.clear()
    _BOOK_TOPIC_MEMO[topic] = parsed
    return parsed


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

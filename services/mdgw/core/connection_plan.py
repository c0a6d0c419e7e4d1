"""Which topics go on which websocket: the ingestor's connection plan, sans-I/O.

A configured stream (one category, some symbols, one depth, trades or not) becomes Bybit
topics ``orderbook.{depth}.{symbol}`` and ``publicTrade.{symbol}``; the topics of a category
are packed into as few connections as Bybit's per-connection args limit allows
(:data:`~mdgw.core.bybit_spec.MAX_ARGS_CHARS_PER_CONNECTION`), a symbol's book and trades next
to each other. The command line's :class:`Selection` (``--category``, ``--symbols``) shards
the configured streams over several ingestors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mdgw.core.bybit import book_topic, rpi_topic, trade_topic_for
from mdgw.core.bybit_spec import (
    CATEGORIES,
    MAX_ARGS_CHARS_PER_CONNECTION,
    MAX_ARGS_PER_CONNECTION,
)

__all__ = [
    "Selection",
    "SelectionError",
    "StreamSpec",
    "args_chars",
    "owns_system_status",
    "plan_connections",
    "plan_streams",
    "stream_topics",
]


class StreamSpec(Protocol):
    """One configured stream (``mdgw.runtime.settings.StreamConfig`` is one)."""

    @property
    def category(self) -> str: ...
    @property
    def symbols(self) -> Sequence[str]: ...
    @property
    def depth(self) -> int | str: ...
    @property
    def trades(self) -> bool: ...
    @property
    def rpi(self) -> bool: ...
    @property
    def connections(self) -> int: ...


class SelectionError(ValueError):
    """The command line asked for streams the configuration does not have."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which configured streams this process serves; empty means all (for sharding)."""

    categories: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()


def stream_topics(
    stream: StreamSpec, symbols: Sequence[str] = (), *, rpi: bool = True
) -> list[str]:
    """A stream's Bybit topics, a symbol's book and trades next to each other.

    ``rpi=False`` leaves out the RPI books (the A/B copies of a stream: see plan_streams).
    """
    topics: list[str] = []
    for symbol in stream.symbols:
        if symbols and symbol not in symbols:
            continue
        topics.append(book_topic(stream.depth, symbol))
        if rpi and stream.rpi:
            topics.append(rpi_topic(symbol))
        if stream.trades:
            # Options: one publicTrade.{baseCoin} for all of a coin's options.
            topics.append(trade_topic_for(stream.category, symbol))
    return topics


def plan_streams(streams: Sequence[StreamSpec], selection: Selection) -> dict[str, list[list[str]]]:
    """Category -> topic groups, one group per websocket. SelectionError if nothing fits.

    A stream with ``connections = N`` has its topics in N groups of its category.
    """
    for category in selection.categories:
        if category not in CATEGORIES:
            raise SelectionError(f"unknown category {category!r}; choose from {CATEGORIES}")
        if not any(s.category == category for s in streams):
            raise SelectionError(f"--category {category}: no stream of that category in the config")
    chosen = [s for s in streams if not selection.categories or s.category in selection.categories]
    known = {symbol for s in chosen for symbol in s.symbols}
    missing = [symbol for symbol in selection.symbols if symbol not in known]
    if missing:
        where = f" in categories {', '.join(selection.categories)}" if selection.categories else ""
        raise SelectionError(
            f"--symbols {','.join(missing)}: not configured{where} "
            f"(configured: {', '.join(sorted(known)) or 'none'})"
        )
    groups: dict[str, list[list[str]]] = {}
    # Copy k carries the streams with more than k connections: with `connections = 2`,
    # every topic of the stream is on two websockets (an A/B feed), never twice on one.
    # RPI books stay single-source (copy 0 only): the builder arbitrates orderbook.{depth}
    # by u over its sources, not orderbook.rpi. Depth "full" with connections > 1 is
    # refused by the settings (its REST-snapshot sync is single-source).
    for copy in range(max((s.connections for s in chosen), default=0)):
        by_category: dict[str, list[str]] = {}
        for stream in chosen:
            if stream.connections > copy:
                topics = stream_topics(stream, selection.symbols, rpi=copy == 0)
                by_category.setdefault(stream.category, []).extend(topics)
        # A symbol at depth 1 and at a deeper depth is in two streams: its trades and RPI
        # book are subscribed once per copy (Bybit rejects a request naming a topic twice).
        for cat, topics in by_category.items():
            if topics:
                groups.setdefault(cat, []).extend(
                    plan_connections(
                        list(dict.fromkeys(topics)), max_args=MAX_ARGS_PER_CONNECTION.get(cat)
                    )
                )
    if not groups:
        raise SelectionError("the selection leaves no topic to subscribe")
    return groups


def owns_system_status(streams: Sequence[StreamSpec], selection: Selection) -> bool:
    """Whether this ingestor opens the gateway's one ``system.status`` connection.

    Notices are exchange-wide, so one connection serves the whole gateway: the ingestor
    that serves the first symbol of the first configured stream opens it (with sharded
    ingestors, exactly one of them does).
    """
    if not streams:
        return False
    first = streams[0]
    return (not selection.categories or first.category in selection.categories) and (
        not selection.symbols or first.symbols[0] in selection.symbols
    )


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

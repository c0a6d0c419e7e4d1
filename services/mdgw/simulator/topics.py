"""Depth topics: each ``orderbook.{depth}.SYMBOL`` is a window on the symbol's deep book.

A topic's delta is the difference between the window at its previous message and now:
changed levels, levels leaving the window as size ``"0"``, levels entering as inserts.
Applying snapshot + deltas reproduces the window exactly. A topic sends nothing when its
window did not change (no empty deltas), and at most one message per Bybit push interval
(50: 20 ms, 200: 100 ms, 1000: 200 ms); changes in between are merged into one delta.
``orderbook.1`` is snapshot-only. Each topic has its own ``u`` (+1 per message).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from typing import Final, NamedTuple

from mdgw.core.bybit_spec import DEPTHS, FULL_DEPTH, OPTION_DEPTHS
from mdgw.simulator.book import INF, Side

__all__ = [
    "DEPTHS",
    "FULL",
    "OPTION_DEPTHS",
    "PUSH_INTERVAL_MS",
    "DepthTopic",
    "ServedTopic",
    "parse_served_topic",
    "window_delta",
]

# orderbook.full.{symbol}: delta-only, every 200 ms, the whole book (Bybit's REST snapshot
# caps at 10,000 levels a side; the simulated book is shallower). Its topics-dict key.
FULL: Final = FULL_DEPTH
# Bybit's push interval per depth (docs: orderbook, 2026); level 1 goes out on every change.
PUSH_INTERVAL_MS: Final[dict[int, int]] = {
    1: 0,
    25: 20,
    50: 20,
    100: 100,
    200: 100,
    1000: 200,
    FULL: 200,
}


class ServedTopic(NamedTuple):
    """A topic the simulator serves, parsed (fields in the order of core's ``OrderbookTopic``).

    ``orderbook.{depth}.{symbol}`` has its depth (:data:`FULL` for ``orderbook.full``);
    ``publicTrade.{symbol}`` has depth 0.
    """

    symbol: str
    depth: int


def parse_served_topic(topic: str) -> ServedTopic | None:
    """``orderbook.50.BTCUSDT`` -> ("BTCUSDT", 50); ``publicTrade.X`` -> ("X", 0); else None.

    Depths Bybit does not offer give None.
    """
    kind, _, rest = topic.partition(".")
    if kind == "publicTrade":
        return ServedTopic(rest, 0) if rest and "." not in rest else None
    if kind == "orderbook":
        depth_text, _, symbol = rest.partition(".")
        if depth_text == "full":
            return ServedTopic(symbol, FULL) if symbol and "." not in symbol else None
        # "orderbook.050.X" is not a Bybit topic even though int("050") == 50.
        if (
            depth_text.isdigit()
            and int(depth_text) in (*DEPTHS, *OPTION_DEPTHS)
            and str(int(depth_text)) == depth_text
            and symbol
            and "." not in symbol
        ):
            return ServedTopic(symbol, int(depth_text))
    return None


class DepthTopic:
    """One depth topic of one symbol: its u, its window's bounds and pending changes."""

    __slots__ = (
        "bound_a",
        "bound_b",
        "depth",
        "history",
        "interval",
        "last_cts",
        "last_emit_ms",
        "last_sent_ms",
        "last_seq",
        "last_top",
        "listening",
        "name",
        "pend_a",
        "pend_b",
        "u",
    )

    def __init__(self, name: str, depth: int, u: int, step: int, history: int) -> None:
        self.name = name
        self.depth = depth
        self.interval = PUSH_INTERVAL_MS[depth]
        self.u = u
        self.history: deque[tuple[int, int]] = deque([(u, step)], maxlen=history)
        self.listening = False
        self.bound_b = INF
        self.bound_a = INF
        # Sizes at the topic's previous message of every level touched since (first touch).
        self.pend_b: dict[int, int] = {}
        self.pend_a: dict[int, int] = {}
        self.last_top: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.last_emit_ms = -(1 << 62)
        self.last_sent_ms = 0
        self.last_seq = 0
        self.last_cts = 0


def window_delta(
    side: Side, depth: int, old_bound: int, pend: Mapping[int, int]
) -> list[tuple[int, int]]:
    """Levels of a *depth* window that differ from the window before *pend*'s changes.

    (key, size) pairs sorted best first; size 0 means the level left the window.
    """
    keys = side.keys
    sizes = side.sizes
    count = len(keys)
    new_bound = keys[depth - 1] if count >= depth else INF
    out: dict[int, int] = {}
    for key, old in pend.items():
        new = sizes.get(key, 0)
        was_in = old > 0 and key <= old_bound
        if new > 0 and key <= new_bound:
            if not was_in or old != new:
                out[key] = new
        elif was_in:
            out[key] = 0
    if new_bound > old_bound:
        # The window reaches further than before: untouched levels come in.
        start = bisect_right(keys, old_bound)
        for key in keys[start : min(depth, count)]:
            if key not in pend:
                out[key] = sizes[key]
    elif new_bound < old_bound:
        # The window ends earlier than before: untouched levels drop out.
        stop = bisect_right(keys, old_bound)
        for key in keys[depth:stop]:
            if key not in pend:
                out[key] = 0
    return sorted(out.items())

"""The simulated ``orderbook.rpi.{symbol}`` topic: the deep book plus RPI orders, and its truth.

Sans-I/O and deterministic (its own seeded random source, so the ordinary books evolve
exactly as without it). Model, per symbol:

- RPI orders rest beside the ordinary book: a dict of price key -> RPI size per side (bid
  keys negated, as in :mod:`.market`). Each market step places, resizes or cancels a few of
  them near the touch, sometimes one tick better than the best ordinary price (price
  improvement is what RPI orders are for), never through the fair price, so neither the
  ordinary book nor the RPI one is ever crossed (Bybit hides RPI size that would cross the
  opposite non-RPI price; here none would).
- The topic's window is the best :data:`RPI_DEPTH` prices of a side holding either kind of
  size, each level ``[price, non-RPI size, RPI size]``. Like Bybit it pushes at most every
  100 ms, only when the window changed: a delta holds the changed levels, ``["p","0","0"]``
  for a level that left, and a level keeps a ``"0"`` for a size it does not have.
- Truth: the window at each ``u`` it sent, for the last ``history`` messages.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

import orjson

from mdgw.simulator.book import Side
from mdgw.simulator.frames import Frame

if TYPE_CHECKING:  # symbol_market imports this module; this one only reads it
    from mdgw.simulator.symbol_market import SymbolMarket

__all__ = ["RPI_DEPTH", "RPI_INTERVAL_MS", "RpiTopic", "is_rpi_topic"]

RPI_DEPTH: Final = 50
RPI_INTERVAL_MS: Final = 100
RPI_PREFIX: Final = "orderbook.rpi."
_CHANGES_MEAN: Final = 1.5  # RPI order changes per market step
_RANK_MEAN: Final = 4.0  # they cluster at the touch

Window = dict[int, tuple[int, int]]  # key -> (non-RPI size, RPI size)


def is_rpi_topic(topic: str) -> bool:
    return topic.startswith(RPI_PREFIX)


class RpiTopic:
    """The RPI book topic of one symbol (created when first tracked)."""

    def __init__(self, market: SymbolMarket, now_ms: int, history: int) -> None:
        self.name = f"{RPI_PREFIX}{market.symbol}"
        self.rng = random.Random(f"{market.seed_name}/rpi")
        self.orders_b: dict[int, int] = {}
        self.orders_a: dict[int, int] = {}
        self.u = random.Random(f"{market.seed_name}/urpi").randrange(10**5, 10**7)
        self.listening = False
        self.last_emit_ms = now_ms
        self.last_seq = market.seq
        self.last_cts = now_ms
        self.sent_b: Window = _window(market.bids, self.orders_b)
        self.sent_a: Window = _window(market.asks, self.orders_a)
        self.history: deque[tuple[int, Window, Window]] = deque(maxlen=history)
        self.history.append((self.u, self.sent_b, self.sent_a))

    # --- the market moves ----------------------------------------------------------------

    def step(self, market: SymbolMarket, now_ms: int, cts: int, frames: list[Frame]) -> None:
        self._evolve(market)
        if now_ms - self.last_emit_ms < RPI_INTERVAL_MS:
            return
        new_b = _window(market.bids, self.orders_b)
        new_a = _window(market.asks, self.orders_a)
        delta_b = _diff(self.sent_b, new_b)
        delta_a = _diff(self.sent_a, new_a)
        if not delta_b and not delta_a:
            return
        self.sent_b, self.sent_a = new_b, new_a
        self._advance(market, now_ms, cts)
        if self.listening:
            frames.append(
                self._frame(market, "delta", delta_b, delta_a, ts=now_ms, cts=cts, fresh=True)
            )

    def _evolve(self, market: SymbolMarket) -> None:
        rng = self.rng
        tick = market.inst.tick
        fair = market.book.fair
        for _ in range(int(rng.expovariate(1.0 / _CHANGES_MEAN))):
            bid = rng.random() < 0.5
            side = market.bids if bid else market.asks
            orders = self.orders_b if bid else self.orders_a
            if not side.keys:
                continue
            roll = rng.random()
            if roll < 0.3 and orders:
                del orders[rng.choice(sorted(orders))]  # an RPI order leaves
                continue
            rank = min(int(rng.expovariate(1.0 / _RANK_MEAN)), len(side.keys) - 1)
            key = side.keys[rank]
            if roll > 0.8:
                key -= tick  # one tick better than that level (price improvement)
            size = max(1, int(market.inst.typical_size * rng.lognormvariate(-0.5, 1.0)))
            orders[key] = size
        # Never through the fair price: the ordinary book keeps bids <= fair < asks, and so
        # do RPI orders, so no side crosses the other.
        for key in [k for k in self.orders_b if -k > fair]:
            del self.orders_b[key]
        for key in [k for k in self.orders_a if k <= fair]:
            del self.orders_a[key]

    def _advance(self, market: SymbolMarket, now_ms: int, cts: int) -> None:
        self.u += 1
        self.history.append((self.u, self.sent_b, self.sent_a))
        self.last_emit_ms = now_ms
        self.last_seq = market.seq
        self.last_cts = cts

    # --- frames -----------------------------------------------------------------------

    def snapshot(self, market: SymbolMarket, now_ms: int, *, fresh: bool) -> Frame:
        """The window at the current ``u`` (what was last sent, or would have been)."""
        return self._frame(
            market,
            "snapshot",
            sorted(self.sent_b.items()),
            sorted(self.sent_a.items()),
            ts=now_ms,
            cts=self.last_cts,
            fresh=fresh,
        )

    def restart(self, market: SymbolMarket, now_ms: int) -> Frame:
        """A ``u = 1`` snapshot, as after a restart of Bybit's service."""
        self.u = 0
        self.sent_b = _window(market.bids, self.orders_b)
        self.sent_a = _window(market.asks, self.orders_a)
        self._advance(market, now_ms, now_ms)
        return self.snapshot(market, now_ms, fresh=True)

    def _frame(
        self,
        market: SymbolMarket,
        kind: str,
        bids: list[tuple[int, tuple[int, int]]],
        asks: list[tuple[int, tuple[int, int]]],
        *,
        ts: int,
        cts: int,
        fresh: bool,
    ) -> Frame:

        data = {
            "s": market.symbol,
            "b": _render(market, bids, -1),
            "a": _render(market, asks, 1),
            "u": self.u,
            "seq": self.last_seq,
        }
        # Bybit's example puts ts before type on every category.
        obj = {"topic": self.name, "ts": ts, "type": kind, "data": data, "cts": cts}
        payload = orjson.dumps(obj)
        return Frame(market.category, self.name, market.symbol, kind, self.u, fresh, payload)  # type: ignore[arg-type]

    # --- truth ------------------------------------------------------------------------

    def truth(self, market: SymbolMarket, u: int) -> tuple[list[list[str]], list[list[str]]]:
        """``[price, non-RPI, RPI]`` strings of both sides at ``u``; LookupError if unknown."""
        for seen, bids, asks in reversed(self.history):
            if seen == u:
                return (
                    _render(market, sorted(bids.items()), -1),
                    _render(market, sorted(asks.items()), 1),
                )
        raise LookupError(f"{self.name} has not sent u={u} (or it is too old)")


def _window(side: Side, orders: Mapping[int, int]) -> Window:
    keys = sorted({*side.keys[:RPI_DEPTH], *orders})[:RPI_DEPTH]
    sizes = side.sizes
    return {key: (sizes.get(key, 0), orders.get(key, 0)) for key in keys}


def _diff(old: Window, new: Window) -> list[tuple[int, tuple[int, int]]]:
    out = {key: sizes for key, sizes in new.items() if old.get(key) != sizes}
    for key in old:
        if key not in new:
            out[key] = (0, 0)
    return sorted(out.items())


def _render(
    market: SymbolMarket, levels: list[tuple[int, tuple[int, int]]], sign: int
) -> list[list[str]]:
    price: Callable[[int], str] = market.inst.price_str
    size: Callable[[int], str] = market.inst.size_str
    return [
        [price(sign * key), size(n) if n else "0", size(r) if r else "0"] for key, (n, r) in levels
    ]

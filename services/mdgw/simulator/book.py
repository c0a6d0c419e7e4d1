"""The deep book of one simulated symbol, and the seeded random walk that moves it.

Sans-I/O and deterministic (one seeded ``random.Random`` per symbol). ``levels`` price
levels per side (>= 1000, deeper than the deepest topic), integers of the instrument's
price and size units (see :mod:`.instruments`); bids are kept under negated keys so that
for both sides "better" means "smaller key". A fair price does a random walk: bids stay at
or below it, asks above it, so the book is never crossed; each step cancels, joins,
resizes and inserts a few levels (the touch changes often, the deep book rarely), and the
far end is refilled so each side keeps exactly ``levels`` levels.

Every change goes through :meth:`DeepBook.set`, which records the size a level had before
the current step (``Side.pend``): the topic windows' deltas (:mod:`.topics`) and the truth's
undo log (:mod:`.truth`) are both made from it.
"""

from __future__ import annotations

import random
from bisect import bisect_right, insort
from typing import Final

from mdgw.simulator.instruments import Instrument

__all__ = ["INF", "DeepBook", "Side"]

INF: Final = 1 << 62  # a boundary key past every level: "the window holds the whole side"
_MOVE_P: Final = 0.08  # chance per step that the fair price moves one tick
_JOIN_P: Final = 0.35  # chance per step that a new level improves the touch
_RANK_MEAN: Final = 12.0  # mean book rank of a quote change: the touch moves most
_GAP_MEAN: Final = 1.2  # mean count of empty ticks between levels


class Side:
    """One side of the deep book, with the sizes its levels had before the current step."""

    __slots__ = ("keys", "pend", "sizes")

    def __init__(self) -> None:
        self.keys: list[int] = []  # ascending: best first (bids are stored negated)
        self.sizes: dict[int, int] = {}
        # key -> size before this step (0: absent), recorded at the first touch of the step.
        self.pend: dict[int, int] = {}

    def boundary(self, depth: int) -> int:
        """The worst key inside a window of *depth* levels (INF when the side is shorter)."""
        return self.keys[depth - 1] if len(self.keys) >= depth else INF

    def top(self, depth: int) -> list[tuple[int, int]]:
        sizes = self.sizes
        return [(key, sizes[key]) for key in self.keys[:depth]]


class DeepBook:
    """Both sides of one symbol's deep book and its fair price; *rng* drives every change."""

    def __init__(self, inst: Instrument, levels: int, rng: random.Random) -> None:
        self.inst = inst
        self.levels = levels
        self.rng = rng
        self.bids = Side()
        self.asks = Side()
        self.fair = inst.start_price
        self.build()

    def draw_size(self) -> int:
        return max(1, int(self.inst.typical_size * self.rng.lognormvariate(0.0, 1.1)))

    def gap(self) -> int:
        return self.inst.tick * (1 + int(self.rng.expovariate(1.0 / _GAP_MEAN)))

    def build(self) -> None:
        tick = self.inst.tick
        price = self.fair
        for _ in range(self.levels):
            if price < tick:
                break
            self.bids.keys.append(-price)
            self.bids.sizes[-price] = self.draw_size()
            price -= self.gap()
        price = self.fair + tick
        for _ in range(self.levels):
            self.asks.keys.append(price)
            self.asks.sizes[price] = self.draw_size()
            price += self.gap()

    def set(self, side: Side, key: int, size: int) -> None:
        sizes = side.sizes
        old = sizes.get(key, 0)
        if key not in side.pend:
            side.pend[key] = old
        if size > 0:
            if not old:
                insort(side.keys, key)
            sizes[key] = size
        elif old:
            del sizes[key]
            keys = side.keys
            del keys[bisect_right(keys, key) - 1]

    def quote(self) -> None:
        """Resting orders come and go: the fair price walks, the touch is joined, levels change."""
        rng = self.rng
        tick = self.inst.tick
        bids, asks = self.bids, self.asks
        if rng.random() < _MOVE_P:
            step = tick if rng.random() < 0.5 else -tick
            if self.fair + step >= 2 * tick:
                self.fair += step
            # Orders on the wrong side of the new fair price are pulled: never crossed.
            while bids.keys and -bids.keys[0] > self.fair:
                self.set(bids, bids.keys[0], 0)
            while asks.keys and asks.keys[0] <= self.fair:
                self.set(asks, asks.keys[0], 0)
        if rng.random() < _JOIN_P:
            if rng.random() < 0.5:
                if bids.keys and -bids.keys[0] < self.fair:
                    self.set(bids, bids.keys[0] - tick, self.draw_size())
            elif asks.keys and asks.keys[0] > self.fair + tick:
                self.set(asks, asks.keys[0] - tick, self.draw_size())
        for _ in range(1 + int(rng.random() * 4)):
            side = bids if rng.random() < 0.5 else asks
            keys = side.keys
            if not keys:
                continue
            rank = min(int(rng.expovariate(1.0 / _RANK_MEAN)), len(keys) - 1)
            key = keys[rank]
            roll = rng.random()
            if roll < 0.6:
                self.set(side, key, self.draw_size())
            elif roll < 0.8:
                if rank > 0 or roll < 0.65:
                    self.set(side, key, 0)
            elif rank + 1 < len(keys):
                # A new level in the gap behind this one (further from the touch).
                room = (keys[rank + 1] - key) // tick - 1
                if room > 0:
                    self.set(side, key + tick * (1 + rng.randrange(room)), self.draw_size())

    def refill(self) -> None:
        """Keep exactly ``levels`` levels a side: add or drop at the far end."""
        tick = self.inst.tick
        for side, is_bid in ((self.bids, True), (self.asks, False)):
            keys = side.keys
            while keys and len(keys) < self.levels:
                key = keys[-1] + self.gap()
                if is_bid and -key < tick:
                    break
                self.set(side, key, self.draw_size())
            while len(keys) > self.levels:
                self.set(side, keys[-1], 0)

    def top(self) -> tuple[int, int, int, int]:
        """Best bid key, its size, best ask key, its size."""
        bids, asks = self.bids, self.asks
        bid, ask = bids.keys[0], asks.keys[0]
        return bid, bids.sizes[bid], ask, asks.sizes[ask]

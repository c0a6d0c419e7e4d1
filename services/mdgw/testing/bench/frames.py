"""Deterministic Bybit v5 frames for the benchmarks: depth-50 books whose deltas cycle.

Every symbol has a starting book ``B0`` (50 bids, 50 asks, prices on a 0.1 tick around a
per-symbol mid) and a cycle of ``2 * steps`` deltas: the first half changes 1 to 5 levels
each (a new size, or a level leaving the window while another enters, as Bybit sends it,
so each side keeps exactly 50 levels), the second half undoes the first in reverse order.
After every full cycle the book is ``B0`` again, so:

- delta number ``k`` (``k >= 1``) carries ``u = U0 + k`` and is step ``(k - 1) % cycle``;
- the book after it is ``state(k % cycle)``, computed by replaying at most one cycle.

That lets a blaster send contiguous ``u`` forever from a few hundred pre-built templates
(only ``ts``, ``u``, ``seq`` and ``cts`` are formatted in per frame), lets a consumer check
any published book against the truth, and lets a server answer a resubscribe with the
right snapshot at any ``u``. Bids stay below the mid and asks above it: never crossed.
"""

from __future__ import annotations

import random
from functools import lru_cache

__all__ = [
    "DEPTH",
    "U0",
    "BookScript",
    "book_topic",
    "script",
    "symbol",
    "trade_template",
    "trade_topic",
]

DEPTH = 50  # Bybit topic depth of every scripted book
U0 = 1_000_000  # u of the first snapshot of every topic
_CANDIDATES = 60  # prices per side a level may take; 50 are in the book at any time
_TICK = 0.1

Side = dict[str, str]  # price string -> size string
Change = list[tuple[str, str]]  # (price, size); size "0" deletes


def symbol(index: int) -> str:
    """``S0007USDT``: the benchmark's symbol number ``index`` (a valid Bybit symbol)."""
    return f"S{index:04d}USDT"


def book_topic(index: int) -> str:
    return f"orderbook.{DEPTH}.{symbol(index)}"


def trade_topic(index: int) -> str:
    return f"publicTrade.{symbol(index)}"


def _levels_json(levels: Change) -> str:
    return ",".join(f'["{price}","{size}"]' for price, size in levels)


class BookScript:
    """One symbol's scripted book: snapshot, delta templates and the truth at every ``u``."""

    __slots__ = ("_asks0", "_bids0", "_changes", "cycle", "deltas", "index", "symbol", "topic")

    def __init__(self, index: int, *, seed: int = 1, steps: int = 16) -> None:
        rng = random.Random(f"{seed}/{index}")
        self.index = index
        self.symbol = symbol(index)
        self.topic = book_topic(index)
        mid = 1000.0 + 10.0 * index
        bid_prices = [f"{mid - _TICK * k:.1f}" for k in range(1, _CANDIDATES + 1)]
        ask_prices = [f"{mid + _TICK * k:.1f}" for k in range(1, _CANDIDATES + 1)]
        self._bids0 = self._start(rng, bid_prices)
        self._asks0 = self._start(rng, ask_prices)
        bids, asks = dict(self._bids0), dict(self._asks0)
        forward: list[tuple[Change, Change]] = []
        undo: list[tuple[Change, Change]] = []
        for _ in range(steps):
            wanted = rng.randint(1, 5)
            changes: tuple[Change, Change] = ([], [])
            inverse: tuple[Change, Change] = ([], [])
            touched: set[str] = set()
            while sum(map(len, changes)) < wanted:
                side = rng.randrange(2)
                book, prices = (bids, bid_prices) if side == 0 else (asks, ask_prices)
                present = [p for p in book if p not in touched]
                if sum(map(len, changes)) + 2 <= wanted and rng.random() < 0.3:
                    absent = [p for p in prices if p not in book and p not in touched]
                    leaving, entering = rng.choice(present), rng.choice(absent)
                    size = _size(rng)
                    changes[side].extend([(leaving, "0"), (entering, size)])
                    inverse[side].extend([(entering, "0"), (leaving, book[leaving])])
                    del book[leaving]
                    book[entering] = size
                    touched.update((leaving, entering))
                else:
                    price = rng.choice(present)
                    size = _size(rng)
                    changes[side].append((price, size))
                    inverse[side].append((price, book[price]))
                    book[price] = size
                    touched.add(price)
            forward.append(changes)
            undo.append(inverse)
        self._changes = forward + undo[::-1]
        self.cycle = len(self._changes)
        self.deltas = [self._delta_template(b, a) for b, a in self._changes]

    @staticmethod
    def _start(rng: random.Random, prices: list[str]) -> Side:
        kept = sorted(rng.sample(range(len(prices)), DEPTH))
        return {prices[i]: _size(rng) for i in kept}

    def _delta_template(self, bids: Change, asks: Change) -> bytes:
        # Bybit's field order; %d slots: ts, u, seq, cts.
        return (
            f'{{"topic":"{self.topic}","type":"delta","ts":%d,"data":{{"s":"{self.symbol}",'
            f'"b":[{_levels_json(bids)}],"a":[{_levels_json(asks)}],"u":%d,"seq":%d}},"cts":%d}}'
        ).encode()

    def delta(self, k: int, ts: int) -> bytes:
        """Delta number ``k`` (``k >= 1``, ``u = U0 + k``), sent at ``ts`` (ms)."""
        return self.deltas[(k - 1) % self.cycle] % (ts, U0 + k, U0 + k, ts)

    def snapshot(self, k: int, ts: int) -> bytes:
        """The snapshot a subscriber gets after ``k`` deltas (``u = U0 + k``)."""
        bids, asks = self.state(k % self.cycle)
        return (
            f'{{"topic":"{self.topic}","type":"snapshot","ts":{ts},"data":{{"s":"{self.symbol}",'
            f'"b":[{_levels_json(bids)}],"a":[{_levels_json(asks)}],"u":{U0 + k},'
            f'"seq":{U0 + k}}},"cts":{ts}}}'
        ).encode()

    def state(self, phase: int) -> tuple[Change, Change]:
        """The whole book after ``phase`` deltas of a cycle: bids best first, asks best first."""
        bids, asks = dict(self._bids0), dict(self._asks0)
        for bid_changes, ask_changes in self._changes[:phase]:
            for book, changes in ((bids, bid_changes), (asks, ask_changes)):
                for price, size in changes:
                    if size == "0":
                        book.pop(price, None)
                    else:
                        book[price] = size
        return (
            sorted(bids.items(), key=lambda level: -float(level[0])),
            sorted(asks.items(), key=lambda level: float(level[0])),
        )

    def top(self, u: int, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        """The top ``depth`` levels per side at ``u``, as a ``book`` payload lists them."""
        return _top(self, (u - U0) % self.cycle, depth)


@lru_cache(maxsize=65_536)
def _top(book: BookScript, phase: int, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    bids, asks = book.state(phase)
    return [list(level) for level in bids[:depth]], [list(level) for level in asks[:depth]]


def _size(rng: random.Random) -> str:
    return f"{rng.randint(1, 99_999) / 1000:.3f}"


@lru_cache(maxsize=16_384)
def script(index: int, seed: int = 1) -> BookScript:
    """The (cached) script of symbol ``index``: every process builds the same one."""
    return BookScript(index, seed=seed)


# Bybit's trade ids are UUIDs (36 characters): the builder keeps the last ones of every
# symbol to drop repeats, so their length matters for its memory.
_TRADE_ID_HEAD = "b1c1a4c4-6c5e-5a9b-9b0c-"


def trade_template(index: int) -> bytes:
    """One ``publicTrade`` frame of symbol ``index``; %d slots: ts, T, trade number, seq."""
    sym = symbol(index)
    price = f"{1000.0 + 10.0 * index:.1f}"
    return (
        f'{{"topic":"publicTrade.{sym}","type":"snapshot","ts":%d,"data":[{{"T":%d,"s":"{sym}",'
        f'"S":"Buy","v":"0.010","p":"{price}","L":"PlusTick","i":"{_TRADE_ID_HEAD}%012d",'
        f'"BT":false,"seq":%d}}]}}'
    ).encode()

"""One simulated symbol: its deep book, its trades, and the depth topics that watch it.

:class:`SymbolMarket` is what :class:`~mdgw.simulator.market.Market` keeps per (category,
symbol): a market step (trades at the touch, quote changes, refills), the frames each
tracked topic sends for it, and the windows of the truth log. Sans-I/O and deterministic:
the time comes in as ``now_ms``, randomness from seeded sources named after the symbol.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

from mdgw.simulator.book import DeepBook
from mdgw.simulator.frames import Frame, Print, book_payload, trade_payload
from mdgw.simulator.instruments import Category, Instrument
from mdgw.simulator.topics import FULL, DepthTopic, window_delta
from mdgw.simulator.truth import Levels, TruthLog

if TYPE_CHECKING:
    from mdgw.simulator.market import MarketParams
    from mdgw.simulator.rpi import RpiTopic

__all__ = ["SymbolMarket"]


class SymbolMarket:
    """The deep book of one (category, symbol) and the topics that watch it."""

    def __init__(self, inst: Instrument, params: MarketParams) -> None:
        self.inst = inst
        self.category: Category = inst.category
        self.symbol = inst.symbol
        self.spot = inst.category == "spot"
        name = f"{params.seed}/{inst.category}/{inst.symbol}"
        self.seed_name = name
        self.rng = random.Random(name)
        self.history = params.truth_history
        self.trades_per_step = params.trade_rate / params.rate if params.rate > 0 else 0.0
        self.step_no = 0
        ids = random.Random(name + "/ids")
        self.seq = ids.randrange(10**9, 10**11)
        self.spot_trade_id = 2_200_000_000_000_000_000 + ids.randrange(10**17)
        # Which prints were RPI trades: a source of its own, the book's stays as it was.
        self.rpi_trades = random.Random(name + "/rpi-trades")
        self.trades_per_message = params.trades_per_message
        self.last_trade_price = 0
        self.last_tick_up = True
        self.topics: dict[int, DepthTopic] = {}
        self.rpi: RpiTopic | None = None  # orderbook.rpi.{symbol}, once tracked
        self.trades_listening = False
        # One entry per step since a book topic was first tracked (so the newest is step_no).
        self.truth = TruthLog(params.truth_history)
        self.book = DeepBook(inst, params.levels, self.rng)
        self.bids = self.book.bids
        self.asks = self.book.asks

    # --- trades -----------------------------------------------------------------------

    def _trade(self, now_ms: int, frames: list[Frame]) -> None:
        """One taker order eats into the touch of the opposite side: a publicTrade batch."""
        rng = self.rng
        buy = rng.random() < 0.5
        side = self.asks if buy else self.bids
        want = max(1, int(self.inst.typical_size * rng.lognormvariate(-1.2, 1.3)))
        self.seq += 1 + rng.randrange(40)
        fill_ms = now_ms - rng.randrange(5)
        prints: list[Print] = []
        while want > 0 and len(side.keys) > 1:
            key = side.keys[0]
            avail = side.sizes[key]
            take = min(want, avail)
            price = key if buy else -key
            # A level is several resting orders: one print per maker, 1 to 3 of them.
            parts = min(take, 1 + rng.randrange(3))
            cuts = sorted(rng.sample(range(1, take), parts - 1)) if parts > 1 else []
            bounds = [0, *cuts, take]
            for lo, hi in pairwise(bounds):
                prints.append((price, hi - lo, self._tick_direction(price), self._trade_id()))
            self.book.set(side, key, avail - take)
            want -= take
        if self.trades_listening and prints:
            # Bybit: a batch of more than 1,024 trades comes as several messages that share
            # the batch's seq.
            size = self.trades_per_message
            for start in range(0, len(prints), size):
                frames.append(self._trade_frame(buy, prints[start : start + size], fill_ms))

    def _tick_direction(self, price: int) -> str:
        last = self.last_trade_price
        self.last_trade_price = price
        if last and price != last:
            self.last_tick_up = price > last
            return "PlusTick" if self.last_tick_up else "MinusTick"
        return "ZeroPlusTick" if self.last_tick_up else "ZeroMinusTick"

    def _trade_id(self) -> str:
        if self.spot:
            self.spot_trade_id += 1
            return str(self.spot_trade_id)
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=5))

    def _trade_frame(self, buy: bool, prints: list[Print], t_ms: int) -> Frame:
        inst = self.inst
        if self.category == "option":
            # Options trade on publicTrade.{baseCoin}, with mark/index price and IVs.
            mark = inst.price_str(self.book.fair)
            payload = trade_payload(inst, self.seq, buy, prints, t_ms, mark=mark)
            topic = f"publicTrade.{inst.base}"
        else:
            rpi = [self.rpi_trades.random() < 0.1 for _ in prints]
            payload = trade_payload(inst, self.seq, buy, prints, t_ms, rpi=rpi)
            topic = f"publicTrade.{self.symbol}"
        return Frame(self.category, topic, self.symbol, "trade", 0, True, payload)

    # --- one market step --------------------------------------------------------------

    def advance(self, now_ms: int, trades: int | None, quotes: bool) -> list[Frame]:
        frames: list[Frame] = []
        if trades is None:
            expected = self.trades_per_step
            trades = int(expected) + (1 if self.rng.random() < expected % 1 else 0)
        for _ in range(trades):
            self._trade(now_ms, frames)
        if quotes:
            self.book.quote()
        self.book.refill()
        self._emit(now_ms, frames)
        return frames

    def _emit(self, now_ms: int, frames: list[Frame]) -> None:
        self.step_no += 1
        self.seq += 1 + self.rng.randrange(50)
        cts = now_ms - self.rng.randrange(4)
        bids, asks = self.bids, self.asks
        pend_b, pend_a = bids.pend, asks.pend
        if self.topics:
            self.truth.record(pend_b, pend_a)
            for topic in self.topics.values():
                if topic.depth == 1:
                    self._emit_top(topic, now_ms, cts, frames)
                else:
                    if pend_b:
                        merged = topic.pend_b
                        for key, old in pend_b.items():
                            merged.setdefault(key, old)
                    if pend_a:
                        merged = topic.pend_a
                        for key, old in pend_a.items():
                            merged.setdefault(key, old)
                    if now_ms - topic.last_emit_ms >= topic.interval:
                        self._emit_window(topic, now_ms, cts, frames)
        bids.pend = {}
        asks.pend = {}
        if self.rpi is not None:
            self.rpi.step(self, now_ms, cts, frames)

    def _emit_window(self, topic: DepthTopic, now_ms: int, cts: int, frames: list[Frame]) -> None:
        if not topic.pend_b and not topic.pend_a:
            return
        depth = topic.depth
        delta_b = window_delta(self.bids, depth, topic.bound_b, topic.pend_b)
        delta_a = window_delta(self.asks, depth, topic.bound_a, topic.pend_a)
        topic.pend_b = {}
        topic.pend_a = {}
        topic.bound_b = self.bids.boundary(depth)
        topic.bound_a = self.asks.boundary(depth)
        if not delta_b and not delta_a:
            return  # the window did not move: Bybit sends no empty deltas
        self._advance_u(topic, now_ms, cts)
        if topic.listening:
            frames.append(
                self._book_frame(topic, "delta", delta_b, delta_a, ts=now_ms, cts=cts, fresh=True)
            )

    def _emit_top(self, topic: DepthTopic, now_ms: int, cts: int, frames: list[Frame]) -> None:
        top = self.book.top()
        if top == topic.last_top:
            return
        topic.last_top = top
        self._advance_u(topic, now_ms, cts)
        if topic.listening:
            frames.append(self.snapshot_frame(topic, now_ms, cts, fresh=True))

    def _advance_u(self, topic: DepthTopic, now_ms: int, cts: int) -> None:
        topic.u += 1
        topic.history.append((topic.u, self.step_no))
        topic.last_emit_ms = now_ms
        topic.last_sent_ms = now_ms
        topic.last_seq = self.seq
        topic.last_cts = cts

    # --- frames -----------------------------------------------------------------------

    def snapshot_frame(self, topic: DepthTopic, ts: int, cts: int, *, fresh: bool) -> Frame:
        """The topic's window now, as a snapshot at its current ``u``."""
        depth = topic.depth
        bids, asks = self.bids.top(depth), self.asks.top(depth)
        return self._book_frame(topic, "snapshot", bids, asks, ts=ts, cts=cts, fresh=fresh)

    def _book_frame(
        self,
        topic: DepthTopic,
        kind: Literal["snapshot", "delta"],
        bids: Iterable[tuple[int, int]],
        asks: Iterable[tuple[int, int]],
        *,
        ts: int,
        cts: int,
        fresh: bool,
    ) -> Frame:
        """A book frame of *topic* at its current ``u`` and ``seq``."""
        u, seq = topic.u, topic.last_seq
        payload = book_payload(
            self.inst, topic.name, kind, bids, asks, u=u, seq=seq, ts=ts, cts=cts
        )
        return Frame(self.category, topic.name, self.symbol, kind, u, fresh, payload)

    # --- topics -----------------------------------------------------------------------

    def track(self, depth: int, now_ms: int) -> DepthTopic:
        topic = self.topics.get(depth)
        if topic is None:
            label = "full" if depth == FULL else depth
            name = f"orderbook.{label}.{self.symbol}"
            start = random.Random(f"{self.seed_name}/u{depth}").randrange(10**6, 8 * 10**7)
            topic = DepthTopic(name, depth, start + self.step_no, self.step_no, self.history)
            topic.bound_b = self.bids.boundary(depth)
            topic.bound_a = self.asks.boundary(depth)
            topic.last_top = self.book.top()
            topic.last_sent_ms = now_ms
            topic.last_seq = self.seq
            topic.last_cts = now_ms
            self.topics[depth] = topic
        return topic

    def flush(self, topic: DepthTopic, now_ms: int) -> list[Frame]:
        """Send what a push interval held back, so the book and the topic's u agree again."""
        frames: list[Frame] = []
        if topic.depth > 1:
            self._emit_window(topic, now_ms, topic.last_cts, frames)
        return frames

    def restart(self, topic: DepthTopic, now_ms: int) -> Frame:
        """A ``u = 1`` snapshot, as after a restart of Bybit's service; deltas go on from 1.

        The full book has no snapshot on the socket: it gets an empty ``u = 1`` delta, the
        re-initialisation signal of Bybit's docs (the REST snapshot then has ``u >= 1``).
        """
        topic.u = 0
        topic.pend_b = {}
        topic.pend_a = {}
        topic.bound_b = self.bids.boundary(topic.depth)
        topic.bound_a = self.asks.boundary(topic.depth)
        topic.last_top = self.book.top()
        self._advance_u(topic, now_ms, now_ms)
        if topic.depth == FULL:
            return self._book_frame(topic, "delta", [], [], ts=now_ms, cts=now_ms, fresh=True)
        return self.snapshot_frame(topic, now_ms, now_ms, fresh=True)

    # --- truth ------------------------------------------------------------------------

    def window(self, topic: DepthTopic, u: int) -> tuple[list[tuple[int, int]], ...]:
        """The topic's window at *u* as (key, size) pairs of bids and asks."""
        return self.truth.window(self.book, topic, u, self.step_no)

    def render(self, levels: list[tuple[int, int]], bids: bool) -> Levels:
        price, size = self.inst.price_str, self.inst.size_str
        sign = -1 if bids else 1
        return [(price(sign * key), size(qty)) for key, qty in levels]

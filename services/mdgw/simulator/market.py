"""The simulated exchange's market: seeded deep books, Bybit-shaped frames, and the truth.

Sans-I/O and deterministic: no clocks, sockets or global randomness. The shell passes the
time in (``now_ms``) and decides when a symbol steps; given the same seed and the same
sequence of calls, the books evolve identically.

Model, per (category, symbol) (:mod:`.symbol_market`), one module each:

- :mod:`.book`: a deep book of ``levels`` price levels per side and the seeded random walk
  of its fair price (never crossed); trades (here) take liquidity at the touch;
- :mod:`.topics`: every depth topic (``orderbook.{1,50,200,1000}.SYMBOL``) is a window on
  that one deep book, whose deltas are the window's changes, at most one message per Bybit
  push interval. ``orderbook.1`` is snapshot-only: a new snapshot (``u`` + 1) when the top
  changes, the same ``u`` re-sent after ``resend_interval`` without change
  (:meth:`Market.resends`);
- each topic has its own ``u`` (+1 per message, starting at a large seeded number); ``seq``
  is the symbol's cross sequence, increasing across its topics and trades.

A topic is *tracked* from the first time someone asks for it (a subscription, a REST
request, a restart): from then on it keeps its ``u`` going like Bybit's engine does, whether
anybody listens or not. Frames are only encoded for topics somebody subscribed to
(:meth:`Market.subscribe`, :meth:`Market.unlisten`).

Truth (:mod:`.truth`): :meth:`Market.truth` gives the exact window of a topic at any ``u``
it has sent, for the last ``truth_history`` market steps of the symbol (an undo log of the
deep book).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdgw.simulator.frames import Frame, FrameKind
from mdgw.simulator.instruments import CATEGORIES, Category, Instrument, instrument_for
from mdgw.simulator.rpi import RpiTopic, is_rpi_topic
from mdgw.simulator.symbol_market import SymbolMarket
from mdgw.simulator.topics import (
    DEPTHS,
    FULL,
    OPTION_DEPTHS,
    PUSH_INTERVAL_MS,
    DepthTopic,
    parse_served_topic,
)
from mdgw.simulator.truth import TruthUnavailableError, Window

__all__ = [
    "DEPTHS",
    "FULL",
    "OPTION_DEPTHS",
    "PUSH_INTERVAL_MS",
    "Frame",
    "FrameKind",
    "Market",
    "MarketParams",
    "TruthUnavailableError",
    "Window",
    "parse_served_topic",
]


@dataclass(frozen=True, slots=True)
class MarketParams:
    """What the market model needs; the shell builds it from the config."""

    streams: Mapping[Category, Sequence[str]]
    seed: int = 1
    levels: int = 1500
    rate: float = 20.0  # market steps per second per symbol
    trade_rate: float = 2.0  # trade batches per second per symbol
    resend_interval: float = 3.0  # orderbook.1: re-send the same u after this many seconds
    truth_history: int = 2000  # market steps per symbol kept for truth()
    trades_per_message: int = 1024  # a longer trade batch is split, same seq (Bybit)


@dataclass
class _L1Entry:
    market: SymbolMarket
    topic: DepthTopic


@dataclass
class Market:
    """Every simulated symbol of every category; the one market all connections share."""

    params: MarketParams
    _symbols: dict[tuple[str, str], SymbolMarket] = field(init=False)
    _level1: list[_L1Entry] = field(init=False)

    def __post_init__(self) -> None:
        self._symbols = {}
        self._level1 = []
        for category in CATEGORIES:
            for symbol in self.params.streams.get(category, ()):
                if (category, symbol) not in self._symbols:
                    inst = instrument_for(category, symbol)
                    self._symbols[category, symbol] = SymbolMarket(inst, self.params)

    # --- catalogue --------------------------------------------------------------------

    def symbols(self) -> list[tuple[Category, str]]:
        """Every (category, symbol) served, in config order."""
        return [(market.category, market.symbol) for market in self._symbols.values()]

    def instrument(self, category: Category, symbol: str) -> Instrument:
        return self._market(category, symbol).inst

    def has_symbol(self, category: str, symbol: str) -> bool:
        return (category, symbol) in self._symbols

    def topic_exists(self, category: str, topic: str) -> bool:
        """True for the topics Bybit would accept here: our symbols, Bybit's depths."""
        if is_rpi_topic(topic):
            symbol = topic[len("orderbook.rpi.") :]
            return category != "option" and (category, symbol) in self._symbols
        parsed = parse_served_topic(topic)
        if parsed is None:
            return False
        symbol, depth = parsed
        if category == "option":
            if depth == 0:
                return bool(self._option_markets(symbol))
            return depth in OPTION_DEPTHS and (category, symbol) in self._symbols
        return (depth == 0 or depth in DEPTHS or depth == FULL) and (
            category,
            symbol,
        ) in self._symbols

    def _option_markets(self, base: str) -> list[SymbolMarket]:
        """The option markets of a base coin: what publicTrade.{baseCoin} carries."""
        return [m for m in self._symbols.values() if m.category == "option" and m.inst.base == base]

    def _market(self, category: str, symbol: str) -> SymbolMarket:
        try:
            return self._symbols[category, symbol]
        except KeyError:
            raise KeyError(f"no simulated symbol {category}/{symbol}") from None

    def _resolve(self, category: str, topic: str) -> tuple[SymbolMarket, int]:
        parsed = parse_served_topic(topic)
        if parsed is None:
            raise KeyError(f"not a topic the simulator serves: {topic!r}")
        symbol, depth = parsed
        return self._market(category, symbol), depth

    # --- subscriptions ----------------------------------------------------------------

    def _rpi(self, category: str, topic: str, now_ms: int) -> tuple[SymbolMarket, RpiTopic]:
        market = self._market(category, topic[len("orderbook.rpi.") :])
        if market.rpi is None:
            market.rpi = RpiTopic(market, now_ms, self.params.truth_history)
        return market, market.rpi

    def track(self, category: str, topic: str, now_ms: int) -> None:
        """Start keeping a topic's u and history (idempotent)."""
        if is_rpi_topic(topic):
            self._rpi(category, topic, now_ms)
            return
        if category == "option" and topic.startswith("publicTrade."):
            return  # trades keep no state
        market, depth = self._resolve(category, topic)
        if depth:
            known = depth in market.topics
            book_topic = market.track(depth, now_ms)
            if depth == 1 and not known:
                self._level1.append(_L1Entry(market, book_topic))

    def unlisten(self, category: str, topic: str) -> None:
        """Nobody subscribes to the topic any more: keep its state, stop encoding its frames."""
        if is_rpi_topic(topic):
            self._rpi(category, topic, 0)[1].listening = False
            return
        if category == "option" and topic.startswith("publicTrade."):
            for market in self._option_markets(topic[len("publicTrade.") :]):
                market.trades_listening = False
            return
        market, depth = self._resolve(category, topic)
        if not depth:
            market.trades_listening = False
        elif depth in market.topics:
            market.topics[depth].listening = False

    def subscribe(self, category: str, topic: str, now_ms: int) -> tuple[list[Frame], Frame | None]:
        """What a new subscriber needs: (frames for the existing subscribers first, snapshot).

        From now on the topic's frames are encoded (until :meth:`unlisten`).

        The snapshot is at the topic's current u; the subscriber's next delta is u + 1. If a
        push interval was holding changes back, they go out first as a delta to the topic's
        existing subscribers, so that the current u describes the current book. Trades have
        no snapshot (None).
        """
        if is_rpi_topic(topic):
            market, rpi = self._rpi(category, topic, now_ms)
            rpi.listening = True
            return [], rpi.snapshot(market, now_ms, fresh=False)
        if category == "option" and topic.startswith("publicTrade."):
            for market in self._option_markets(topic[len("publicTrade.") :]):
                market.trades_listening = True
            return [], None
        self.track(category, topic, now_ms)
        market, depth = self._resolve(category, topic)
        if not depth:
            market.trades_listening = True
            return [], None
        book_topic = market.topics[depth]
        flushed = market.flush(book_topic, now_ms)
        book_topic.listening = True
        if depth == FULL:
            return flushed, None  # delta-only: the client takes the REST snapshot
        snapshot = market.snapshot_frame(book_topic, now_ms, book_topic.last_cts, fresh=False)
        return flushed, snapshot

    # --- time -------------------------------------------------------------------------

    def step(
        self,
        category: Category,
        symbol: str,
        now_ms: int,
        *,
        trades: int | None = None,
        quotes: bool = True,
    ) -> list[Frame]:
        """One market step of one symbol at *now_ms*: trades, then quote changes, then frames.

        *trades* forces the number of trade batches (default: seeded, ``trade_rate / rate``
        on average); ``quotes=False`` leaves resting orders alone (tests use both to watch
        trades eat the book).
        """
        return self._market(category, symbol).advance(now_ms, trades, quotes)

    def resends(self, now_ms: int) -> list[Frame]:
        """orderbook.1 snapshots re-sent with the same u after resend_interval of no change."""
        due_ms = self.params.resend_interval * 1000
        frames: list[Frame] = []
        for entry in self._level1:
            topic = entry.topic
            if topic.listening and now_ms - topic.last_sent_ms >= due_ms:
                market = entry.market
                market.seq += 1  # linear re-sends carry a new seq and cts (recordings)
                topic.last_seq = market.seq
                topic.last_sent_ms = now_ms
                frames.append(market.snapshot_frame(topic, now_ms, now_ms - 1, fresh=False))
        return frames

    # --- faults that are part of the market ---------------------------------------------

    def restart(self, category: str, topic: str, now_ms: int) -> Frame:
        """Restart a book topic at ``u = 1`` (part of the truth); returns the u=1 snapshot."""
        if is_rpi_topic(topic):
            market, rpi = self._rpi(category, topic, now_ms)
            return rpi.restart(market, now_ms)
        self.track(category, topic, now_ms)
        market, depth = self._resolve(category, topic)
        if not depth:
            raise KeyError(f"{topic} has no u to restart")
        return market.restart(market.topics[depth], now_ms)

    def crossing_bid(self, category: str, symbol: str) -> str:
        """A bid price one tick above the best ask: what a bogus crossed delta carries."""
        market = self._market(category, symbol)
        return market.inst.price_str(market.asks.keys[0] + market.inst.tick)

    # --- truth ------------------------------------------------------------------------

    def current_u(self, category: str, symbol: str, depth: int) -> int:
        """The latest u of ``orderbook.{depth}.{symbol}`` (TruthUnavailableError if untracked)."""
        topic = self._market(category, symbol).topics.get(depth)
        if topic is None:
            raise TruthUnavailableError(f"orderbook.{depth}.{symbol} was never tracked")
        return topic.u

    def truth(self, category: str, symbol: str, depth: int, u: int) -> Window:
        """The exact window of ``orderbook.{depth}.{symbol}`` at *u*, as the frames print it.

        Raises TruthUnavailableError for a u the topic never sent or one older than the kept
        history (``truth_history`` market steps of the symbol).
        """
        market = self._market(category, symbol)
        topic = market.topics.get(depth)
        if topic is None:
            raise TruthUnavailableError(f"orderbook.{depth}.{symbol} was never tracked")
        bids, asks = market.window(topic, u)
        return Window(u, market.render(bids, True), market.render(asks, False))

    def truths(
        self, category: str, symbol: str, depth: int, us: Collection[int]
    ) -> dict[int, Window]:
        """:meth:`truth` at each of *us* whose truth is available (the others left out), in
        one walk back through the undo log: thousands of books checked for one rewind."""
        market = self._market(category, symbol)
        topic = market.topics.get(depth)
        if topic is None:
            return {}
        # Neighbouring windows share most levels: each (key, size) is rendered once.
        level = _RenderedLevels(market.inst).__getitem__
        out: dict[int, Window] = {}
        for sent, bids, asks in market.truth.windows(market.book, topic, us, market.step_no):
            rendered_bids, rendered_asks = list(map(level, bids)), list(map(level, asks))
            for u in sent:
                out[u] = Window(u, rendered_bids, rendered_asks)
        return out

    def rest_full_orderbook(
        self, category: str, symbol: str, now_ms: int
    ) -> tuple[list[Frame], dict[str, Any]]:
        """``GET /v5/market/full_orderbook``: (frames to send first, ``result``).

        Changes a push interval held back go out first as a delta (to the topic's
        subscribers), so the snapshot's ``u`` and ``seq`` are those of a delta sent.
        """
        market = self._market(category, symbol)
        self.track(category, f"orderbook.full.{symbol}", now_ms)
        topic = market.topics[FULL]
        flushed = market.flush(topic, now_ms)
        bids, asks = market.window(topic, topic.u)
        result = {
            "s": symbol,
            "b": [list(level) for level in market.render(bids, True)],
            "a": [list(level) for level in market.render(asks, False)],
            "ts": now_ms,
            "u": topic.u,
            "seq": topic.last_seq,
            "cts": topic.last_cts,
        }
        return flushed, result

    def rpi_truth(
        self, category: str, symbol: str, u: int | None
    ) -> tuple[int, list[list[str]], list[list[str]]]:
        """The exact ``orderbook.rpi.{symbol}`` window at *u* (the latest when None):
        ``(u, bids, asks)``, levels ``[price, non-RPI size, RPI size]`` as frames print them."""
        market = self._market(category, symbol)
        rpi = market.rpi
        if rpi is None:
            raise TruthUnavailableError(f"orderbook.rpi.{symbol} was never tracked")
        at = rpi.u if u is None else u
        try:
            bids, asks = rpi.truth(market, at)
        except LookupError as exc:
            raise TruthUnavailableError(str(exc)) from None
        return at, bids, asks

    def rest_orderbook(self, category: str, symbol: str, limit: int, now_ms: int) -> dict[str, Any]:
        """``result`` of GET /v5/market/orderbook: the 1000-level stream's book at its u."""
        market = self._market(category, symbol)
        self.track(category, f"orderbook.1000.{symbol}", now_ms)
        topic = market.topics[1000]
        u = topic.u
        bids, asks = market.window(topic, u)
        return {
            "s": symbol,
            "b": [list(level) for level in market.render(bids[:limit], True)],
            "a": [list(level) for level in market.render(asks[:limit], False)],
            "ts": now_ms,
            "u": u,
            "seq": topic.last_seq,
            "cts": topic.last_cts,
        }


class _RenderedLevels(dict[tuple[int, int], tuple[str, str]]):
    """(key, size) -> (price, size) as the frames print them, each rendered once (bids'
    keys are negated prices, so the sign of a key says its side)."""

    def __init__(self, inst: Instrument) -> None:
        super().__init__()
        self.price, self.size = inst.price_str, inst.size_str

    def __missing__(self, level: tuple[int, int]) -> tuple[str, str]:
        key, qty = level
        text = self[level] = (self.price(-key if key < 0 else key), self.size(qty))
        return text

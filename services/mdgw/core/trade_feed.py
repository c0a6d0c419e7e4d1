"""Bybit's ``publicTrade`` frames into ``trade`` messages: one topic per symbol, each trade once.

A trade seen twice (a replay after a reconnect, or the same trade from two connections) is
dropped by its id; a trade whose Bybit ``seq`` is older than the symbol's newest is a replay
even when its id has been forgotten.
"""

from __future__ import annotations

from collections.abc import Callable

from mdgw.core import wire
from mdgw.core.bybit import Trade, TradeFrame
from mdgw.core.hub_state import HubStats, SeqCounter, TradeTopic

__all__ = ["TradeFeed"]

# Per symbol, to drop a trade seen twice (a replay after a reconnect). Small on purpose:
# memory is this times the number of symbols (1,200 symbols on Bybit).
_TRADE_IDS_KEPT = 256


class TradeFeed:
    """The trade topics of one hub; publishes into the hub's ``outbox``."""

    def __init__(
        self,
        *,
        outbox: list[tuple[bytes, bytes]],
        stats: HubStats,
        clock_ns: Callable[[], int],
        counter: Callable[[bytes], SeqCounter],
        max_topics: int,
    ) -> None:
        self._outbox = outbox
        self._stats = stats
        self._clock_ns = clock_ns
        self._counter = counter  # the gateway seq counter of a topic (the hub's)
        self._max_topics = max_topics
        self.topics: dict[tuple[str, str], TradeTopic] = {}  # (category, symbol) -> topic

    def frames(self) -> dict[str, int]:
        """Trade frames received, per category."""
        counts: dict[str, int] = {}
        for (category, _), trades in self.topics.items():
            counts[category] = counts.get(category, 0) + trades.frames
        return counts

    def on_frame(self, category: str, recv_ns: int, frame: TradeFrame) -> None:
        """Publish the trades of ``frame`` not published before."""
        if frame.trades and frame.trades[0].symbol not in ("", frame.symbol):
            # Options: one frame per base coin, trades of many instruments. Each instrument
            # gets its own trade topic, in the frame's order.
            by_symbol: dict[str, list[Trade]] = {}
            for one in frame.trades:
                by_symbol.setdefault(one.symbol or frame.symbol, []).append(one)
            for symbol, batch in by_symbol.items():
                self.on_frame(category, recv_ns, TradeFrame(frame.topic, symbol, frame.ts, batch))
            return
        stats = self._stats
        key = (category, frame.symbol)
        trades = self.topics.get(key)
        if trades is None:
            if len(self.topics) >= self._max_topics:
                stats.topics_refused += 1
                return
            topic = wire.topic("trade", category, frame.symbol)
            trades = self.topics[key] = TradeTopic(topic, self._counter(topic))
        trades.frames += 1
        topic = trades.topic
        seen = trades.seen
        order = trades.order
        counter = trades.seq
        seq = counter.last
        last_seq = trades.last_seq
        for trade in frame.trades:
            # Bybit splits a batch of more than 1,024 trades over several messages with the
            # same seq, so an equal seq is no duplicate; the id decides. A smaller seq is a
            # replay (seq is the engine's, monotonic), even when its id has left `seen`.
            bybit_seq = trade.seq
            if bybit_seq and bybit_seq < last_seq:
                stats.trades_stale += 1
                continue
            if trade.id in seen:
                stats.trades_dup += 1
                continue
            if bybit_seq:
                last_seq = bybit_seq
            seen.add(trade.id)
            order.append(trade.id)
            if len(order) > _TRADE_IDS_KEPT:
                seen.discard(order.popleft())
            seq += 1
            self._outbox.append(
                (
                    topic,
                    wire.encode_trade(
                        category,
                        frame.symbol,
                        seq=seq,
                        pub_ns=self._clock_ns(),
                        recv_ns=recv_ns,
                        trade_id=trade.id,
                        price=trade.price,
                        size=trade.size,
                        side=trade.side,
                        ts=trade.ts,
                        block=trade.block,
                        bybit_seq=bybit_seq,
                        rpi=trade.rpi,
                        option=trade.option,
                    ),
                )
            )
            stats.trades_out += 1
        counter.last = seq
        trades.last_seq = last_seq

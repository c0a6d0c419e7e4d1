"""The simulator's parameters: plain data, so tests and benchmarks need no config file.

``__main__`` builds them from the config (:func:`params_from_settings`); tests build them
directly, usually with ``port=0`` (a free port) and a short ``resend_interval``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mdgw.simulator.instruments import CATEGORIES, Category
from mdgw.simulator.market import MarketParams

if TYPE_CHECKING:
    from mdgw.runtime.settings import Settings

__all__ = ["SimulatorParams", "params_from_settings"]


@dataclass(frozen=True, slots=True)
class SimulatorParams:
    # Symbols served per category; every depth (1, 50, 200, 1000) and publicTrade of each.
    streams: Mapping[Category, Sequence[str]] = field(
        default_factory=lambda: {"linear": ("BTCUSDT", "ETHUSDT")}
    )
    host: str = "127.0.0.1"
    port: int = 7200  # 0: any free port (read it back from SimulatorServer.port)
    seed: int = 1
    rate: float = 20.0  # book updates (market steps) per second per symbol
    trade_rate: float = 2.0  # trade batches per second per symbol
    levels: int = 1500  # levels per side of the deep book (>= 1000 keeps orderbook.1000 full)
    resend_interval: float = 3.0  # orderbook.1 re-sends the same u after this long unchanged
    truth_history: int = 2000  # market steps per symbol kept for truth() (100 s at 20/s)
    tick_interval: float = 0.02  # the send loop's period: all due steps of a tick go at once
    snapshot_first: float = 0.25  # chance that a subscribe's snapshots precede its ack
    max_write_buffer: int = 64 * 1024 * 1024  # a slower client is dropped, as Bybit would
    stats_interval: float = 10.0  # seconds between stats log lines
    # Bybit splits a trade batch over several messages (same seq) past 1,024 trades;
    # tests lower it to see split batches without thousand-trade batches.
    trades_per_message: int = 1024

    def __post_init__(self) -> None:
        for name in ("rate", "tick_interval", "resend_interval", "stats_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.trades_per_message < 1:
            raise ValueError("trades_per_message must be positive")
        if self.levels < 1 or self.truth_history < 1 or self.trade_rate < 0:
            raise ValueError("levels and truth_history must be positive, trade_rate >= 0")
        unknown = set(self.streams) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories: {', '.join(sorted(unknown))}")

    def market(self) -> MarketParams:
        return MarketParams(
            streams=self.streams,
            seed=self.seed,
            levels=self.levels,
            rate=self.rate,
            trade_rate=self.trade_rate,
            resend_interval=self.resend_interval,
            truth_history=self.truth_history,
            trades_per_message=self.trades_per_message,
        )


def params_from_settings(settings: Settings) -> SimulatorParams:
    """The simulator's parameters from the gateway config: its [simulator] section, and the
    symbols of [[bybit.streams]] (every depth of each is served, whatever the stream's depth).
    """
    streams: dict[Category, list[str]] = {category: [] for category in CATEGORIES}
    for stream in settings.bybit.streams:
        symbols = streams[stream.category]
        symbols.extend(symbol for symbol in stream.symbols if symbol not in symbols)
    sim = settings.simulator
    return SimulatorParams(
        streams={category: tuple(symbols) for category, symbols in streams.items() if symbols},
        host=sim.host,
        port=sim.port,
        seed=sim.seed,
        rate=sim.rate,
        trade_rate=sim.trade_rate,
        levels=sim.levels,
        stats_interval=settings.log.stats_interval,
    )

"""Generated configuration: the gateway's TOML and the in-process simulator's parameters.

A harness config uses only keys of the config contract (docs/configuration.md), so that the
services read it exactly as they read a person's ``config/gateway.toml``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import orjson

from mdgw.simulator.params import SimulatorParams

__all__ = [
    "LONG",
    "MIXED_STREAMS",
    "Key",
    "Stream",
    "config_text",
    "gateway_config",
    "sim_params",
]

Key = tuple[str, str]  # (category, symbol)


@dataclass(frozen=True)
class Stream:
    """One symbol's book (and, with *trades*, its trades) in one category."""

    category: str
    symbol: str
    depth: int
    trades: bool = True
    connections: int = 1  # websockets carrying it (an A/B feed from 2)

    @property
    def key(self) -> Key:
        return (self.category, self.symbol)


# Every category, depths 1, 50 and 200: the set most reliability tests run against.
MIXED_STREAMS = (
    Stream("linear", "BTCUSDT", 50),
    Stream("linear", "ETHUSDT", 200),
    Stream("inverse", "BTCUSD", 50),
    Stream("spot", "BTCUSDT", 50),
    Stream("spot", "ETHUSDT", 1),
)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def config_text(streams: Sequence[Stream], sections: Mapping[str, Mapping[str, Any]]) -> str:
    """A gateway.toml: *sections* (``{"bybit": {...}, "zmq": {...}}``) plus the streams,
    one ``[[bybit.streams]]`` table per run of streams with the same category, depth,
    trades flag and connections."""
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in keys.items()]
        if section != "bybit":
            continue
        for (category, depth, trades, connections), group in groupby(
            streams, key=lambda s: (s.category, s.depth, s.trades, s.connections)
        ):
            lines += [
                "[[bybit.streams]]",
                f"category = {_toml_value(category)}",
                f"symbols = {_toml_value([s.symbol for s in group])}",
                f"depth = {depth}",
                f"trades = {_toml_value(trades)}",
            ]
            if connections != 1:
                lines.append(f"connections = {connections}")
    return "\n".join(lines) + "\n"


def gateway_config(
    path: Path,
    *,
    raw: str,
    control: str,
    pub: str,
    snapshot: str,
    ws_url: str = "ws://127.0.0.1:9/v5/public",
    symbols: Sequence[str] = (),
    trades: bool = False,
    stats_interval: float = 1.0,
    publish_depth: int = 25,
    max_rate: float = 0.0,
    journal_dir: Path | None = None,
) -> Path:
    """A benchmark's gateway config at *path*: linear depth-50 books of *symbols*.

    ``journal_dir``: the builder journals there (``[journal]`` on); otherwise it is off.
    """
    journal: dict[str, Any] = {"enabled": journal_dir is not None}
    if journal_dir is not None:
        journal["dir"] = str(journal_dir)
    sections: dict[str, dict[str, Any]] = {
        # The blaster serves no /misc/status: no system.status connection to measure.
        "bybit": {"ws_url": ws_url, "system_status": False},
        "zmq": {"raw": raw, "control": control, "pub": pub, "snapshot": snapshot},
        # max_rate only when set: code from before it rejects the key (A/B runs).
        "books": {"publish_depth": publish_depth, **({"max_rate": max_rate} if max_rate else {})},
        "journal": journal,
        "log": {"level": "info", "format": "json", "stats_interval": stats_interval},
        "ingestor": {"id": "bench-ingestor"},
        # Off unless asked for (--metrics-port auto): no fixed port.
        "metrics": {"book_builder": 0, "ingestor": 0},
    }
    streams = [Stream("linear", symbol, 50, trades) for symbol in symbols]
    path.write_text(config_text(streams, sections))
    return path


def sim_params(
    streams: Sequence[Stream],
    *,
    rate: float = 40.0,
    trade_rate: float = 2.0,
    port: int = 0,
    seed: int = 7,
    truth_history: int = 20_000,
) -> SimulatorParams:
    """Parameters of an in-process simulator serving *streams* (port 0: any free port,
    read back from ``SimulatorServer.port``)."""
    by_category: dict[str, list[str]] = {}
    for stream in streams:
        symbols = by_category.setdefault(stream.category, [])
        if stream.symbol not in symbols:
            symbols.append(stream.symbol)
    return SimulatorParams(
        streams={c: tuple(s) for c, s in by_category.items()},  # type: ignore[misc]
        port=port,
        seed=seed,
        rate=rate,
        trade_rate=trade_rate,
        levels=1200,
        resend_interval=1.0,
        truth_history=truth_history,
        stats_interval=3600.0,
    )


# RELIABILITY_LONG=1: the reliability tests run their long versions (not MDGW_*: the
# services refuse MDGW_ variables that are not config keys).
LONG = os.environ.get("RELIABILITY_LONG", "") not in ("", "0")

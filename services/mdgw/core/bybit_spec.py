"""What Bybit's v5 public streams are and allow: each fact the gateway relies on, once.

Everything else (the decoders, the wire format, the settings, the ingestor, the simulator)
imports these names instead of repeating the values. Source: Bybit's v5 public WebSocket
docs, summarised in ../shared/reference/bybit-v5-public.md.
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = [
    "CATEGORIES",
    "CONNECTION_WINDOW",
    "DEPTHS",
    "FULL_DEPTH",
    "FULL_ORDERBOOK_PATH",
    "FULL_TOPIC_PREFIX",
    "MAX_ARGS_CHARS_PER_CONNECTION",
    "MAX_ARGS_PER_CONNECTION",
    "MAX_ARGS_PER_REQUEST",
    "MAX_NEW_CONNECTIONS",
    "OPTION_DEPTHS",
    "RPI_DEPTH",
    "RPI_TOPIC_PREFIX",
    "SYMBOL_PATTERN",
    "SYSTEM_STATUS_PATH",
    "SYSTEM_STATUS_TOPIC",
    "Category",
    "is_bybit_symbol",
]

Category = Literal["spot", "linear", "inverse", "option"]
CATEGORIES: Final[tuple[Category, ...]] = ("spot", "linear", "inverse", "option")
"""The public categories the gateway serves; each has its own websocket path
(``/v5/public/{category}``). The index is also the category code of the raw envelope."""

DEPTHS: Final = (1, 50, 200, 1000)
"""Order-book depths Bybit offers on spot, linear and inverse (500 was removed in 2025)."""
OPTION_DEPTHS: Final = (25, 100)
"""Option books: 25 levels every 20 ms, 100 every 100 ms."""
RPI_DEPTH: Final = 50
"""``orderbook.rpi.{symbol}``: 50 levels a side, every 100 ms (spot, linear, inverse)."""
RPI_TOPIC_PREFIX: Final = "orderbook.rpi."
FULL_TOPIC_PREFIX: Final = "orderbook.full."
"""``orderbook.full.{symbol}``: delta-only, every 200 ms, synced from the REST
``full_orderbook`` snapshot (up to :data:`FULL_DEPTH` levels a side)."""
FULL_DEPTH: Final = 10_000
FULL_ORDERBOOK_PATH: Final = "/v5/market/full_orderbook"
SYSTEM_STATUS_TOPIC: Final = "system.status"
"""Maintenance and incident notices, on ``/v5/public/misc/status``."""
SYSTEM_STATUS_PATH: Final = "misc/status"
"""Appended to the public websocket base URL for :data:`SYSTEM_STATUS_TOPIC`."""

SYMBOL_PATTERN: Final = re.compile(r"[A-Z0-9][A-Z0-9-]*")
"""How Bybit spells a symbol: upper-case letters and digits (``BTCUSDT``, ``1000PEPEUSDT``,
``BTCUSDH26``), with ``-`` in dated USDC contracts (``BTC-26DEC25``). Match it with
``fullmatch``. The gateway's topics accept a wider set (see :mod:`mdgw.core.wire.topics`),
so a frame is never refused for a spelling Bybit might adopt later."""

# Spot accepts at most 10 args per subscribe request ("args size >10"). Derivatives have
# "no args limit for now"; we still keep their requests small.
MAX_ARGS_PER_REQUEST: Final[dict[str, int]] = {
    "spot": 10,
    "linear": 100,
    "inverse": 100,
    "option": 100,
}
# An option connection may hold at most 2,000 args.
MAX_ARGS_PER_CONNECTION: Final[dict[str, int]] = {"option": 2000}
# The args of one public connection may total at most 21,000 characters.
MAX_ARGS_CHARS_PER_CONNECTION: Final = 21_000

# At most 500 new websocket connections per 5 minutes per IP; beyond that the IP is refused.
MAX_NEW_CONNECTIONS: Final = 500
CONNECTION_WINDOW: Final = 300.0
"""The seconds :data:`MAX_NEW_CONNECTIONS` counts over (Bybit's 5 minutes)."""


def is_bybit_symbol(symbol: str) -> bool:
    """Whether ``symbol`` is spelled the way Bybit spells symbols (:data:`SYMBOL_PATTERN`)."""
    return SYMBOL_PATTERN.fullmatch(symbol) is not None

"""What a simulated symbol trades like: start price, tick, size step and how Bybit prints them.

Pure and deterministic: everything is derived from the category and the symbol's name, so
``BTCUSDT`` looks the same in every run and on every machine (the seed only drives the
market's random walk, not the instrument).

Prices and sizes are integers of a fixed unit (``10**-price_scale`` and ``10**-size_scale``).
Bybit prints them differently per category, as the recordings show:

- linear/inverse: fixed decimals (``"65114.20"``, ``"0.010"``): the instrument's priceScale;
- spot: trailing zeros trimmed (``"65239"``, ``"65140.4"``, ``"0.014"``);
- inverse sizes are whole contracts (``"5823"``).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Final

from mdgw.core.bybit_spec import CATEGORIES, Category

__all__ = ["CATEGORIES", "Category", "Instrument", "base_of", "instrument_for"]


_QUOTES: Final = ("USDT", "USDC", "USD", "EUR", "BTC", "ETH")
# Inverse futures (BTCUSDH26) and dated linear futures (BTC-26DEC25) carry an expiry suffix.
_EXPIRY = re.compile(r"(?:[FGHJKMNQUVXZ]\d{2}|-\d{1,2}[A-Z]{3}\d{2})$")


@dataclass(frozen=True, slots=True)
class _Known:
    price: str  # a realistic price in 2026, as a decimal string
    spot_tick: str
    linear_tick: str
    inverse_tick: str
    spot_size_scale: int
    linear_size_scale: int


# The big names get Bybit's real tick sizes and size steps; every other symbol is derived.
_KNOWN: Final[dict[str, _Known]] = {
    "BTC": _Known("65000", "0.1", "0.10", "0.50", 6, 3),
    "ETH": _Known("3500", "0.01", "0.01", "0.05", 5, 2),
    "SOL": _Known("150", "0.01", "0.010", "0.010", 3, 1),
    "XRP": _Known("0.6", "0.0001", "0.0001", "0.0001", 2, 0),
    "DOGE": _Known("0.12", "0.00001", "0.00001", "0.00001", 1, 0),
    "BNB": _Known("600", "0.1", "0.10", "0.10", 3, 2),
}

# Notional of a typical resting level, in quote currency (contracts of 1 USD on inverse).
_TYPICAL_NOTIONAL: Final = 4000.0


@dataclass(frozen=True, slots=True)
class Instrument:
    """One (category, symbol) with its price and size grids."""

    category: Category
    symbol: str
    base: str
    price_scale: int  # decimals of one price unit
    tick: int  # price units per tick
    size_scale: int  # decimals of one size unit
    start_price: int  # price units, a multiple of tick
    typical_size: int  # size units of a typical resting level

    @property
    def trimmed(self) -> bool:
        """Spot prints trimmed decimals; derivatives print fixed decimals."""
        return self.category == "spot"

    def price_str(self, units: int) -> str:
        return _render(units, self.price_scale, self.trimmed)

    def size_str(self, units: int) -> str:
        return _render(units, self.size_scale, self.trimmed)


def _render(units: int, scale: int, trimmed: bool) -> str:
    if scale == 0:
        return str(units)
    whole, frac = divmod(units, 10**scale)
    text = f"{whole}.{frac:0{scale}d}"
    if trimmed:
        text = text.rstrip("0").rstrip(".")
    return text


def base_of(symbol: str) -> str:
    """The base coin of a Bybit symbol: ``BTCUSDT`` -> ``BTC``, ``BTCUSDH26`` -> ``BTC``,
    ``BTC-27DEC26-100000-C`` (an option) -> ``BTC``."""
    if symbol.count("-") >= 3:
        return symbol.split("-", 1)[0].upper()
    name = _EXPIRY.sub("", symbol.upper())
    for quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return name[: -len(quote)]
    return name


def _fraction(text: str, salt: str) -> float:
    """A stable number in [0, 1) from a name (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(f"{salt}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _units(decimal: str) -> tuple[int, int]:
    """``"0.10"`` -> (10, 2): the integer value and the number of decimals."""
    whole, _, frac = decimal.partition(".")
    return int(whole + frac), len(frac)


def instrument_for(category: Category, symbol: str) -> Instrument:
    """The instrument for *symbol* on *category*, derived from its name."""
    base = base_of(symbol)
    if category == "option":
        # A premium of a few percent of the strike, tick 5, size step 0.01 (BTC options).
        parts = symbol.split("-")
        strike = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1000
        premium = max(100, strike // 20 + int(_fraction(symbol, "premium") * strike / 50))
        return Instrument(
            category=category,
            symbol=symbol,
            base=base,
            price_scale=0,
            tick=5,
            size_scale=2,
            start_price=premium - premium % 5,
            typical_size=100,
        )
    known = _KNOWN.get(base)
    if known is not None:
        tick_text = {
            "spot": known.spot_tick,
            "linear": known.linear_tick,
            "inverse": known.inverse_tick,
        }[category]
        tick, price_scale = _units(tick_text)
        price = float(known.price)
        size_scale = {"spot": known.spot_size_scale, "linear": known.linear_size_scale}.get(
            category, 0
        )
    else:
        # Prices from 0.001 to 1000, log-uniform; about 10^5 ticks to the price.
        price = 10 ** (_fraction(base, "price") * 6 - 3)
        magnitude = math.floor(math.log10(price))
        price_scale = max(0, 5 - magnitude)
        tick = 1
        size_scale = {
            "spot": min(8, max(0, magnitude + 2)),
            "linear": min(6, max(0, magnitude - 1)),
        }.get(category, 0)
    # Quote a few per mille off the reference, stable per (category, symbol).
    price *= 1 + (_fraction(f"{category}:{symbol}", "offset") - 0.5) * 0.004
    start = round(price * 10**price_scale / tick) * tick
    if category == "inverse":
        typical = max(1, round(_TYPICAL_NOTIONAL))
    else:
        typical = max(1, round(_TYPICAL_NOTIONAL / price * 10**size_scale))
    return Instrument(
        category=category,
        symbol=symbol,
        base=base,
        price_scale=price_scale,
        tick=tick,
        size_scale=size_scale,
        start_price=max(start, tick),
        typical_size=typical,
    )

"""Bybit-shaped frames: the data frame type and the JSON of book and trade messages.

Field order as in Bybit's recordings (spot and derivatives differ), so that the bytes the
ingestor gets look like the exchange's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from mdgw.simulator.instruments import Category, Instrument

__all__ = ["Frame", "FrameKind", "Print", "book_payload", "trade_payload"]

FrameKind = Literal["snapshot", "delta", "trade"]
Print = tuple[int, int, str, str]  # one trade: price, size, tick direction, id


@dataclass(frozen=True, slots=True)
class Frame:
    """One data frame, encoded once for every subscriber of its topic."""

    category: Category
    topic: str
    symbol: str
    kind: FrameKind
    u: int  # 0 for trades
    # True when the frame moves the topic to a new u (a delta, or a level-1 snapshot of a
    # new top); False for re-sends and for the snapshot a new subscriber gets.
    fresh: bool
    payload: bytes


def book_payload(
    inst: Instrument,
    topic: str,
    kind: str,
    bids: Iterable[tuple[int, int]],
    asks: Iterable[tuple[int, int]],
    *,
    u: int,
    seq: int,
    ts: int,
    cts: int,
) -> bytes:
    """A book frame of *kind* ("snapshot" or "delta"); bid keys are negated prices, size 0
    is a deletion."""
    price = inst.price_str
    size = inst.size_str
    data = {
        "s": inst.symbol,
        "b": [[price(-key), size(qty) if qty else "0"] for key, qty in bids],
        "a": [[price(key), size(qty) if qty else "0"] for key, qty in asks],
        "u": u,
        "seq": seq,
    }
    # Key order as recorded: spot puts ts before type, derivatives after.
    if inst.category == "spot":
        obj = {"topic": topic, "ts": ts, "type": kind, "data": data, "cts": cts}
    else:
        obj = {"topic": topic, "type": kind, "ts": ts, "data": data, "cts": cts}
    return orjson.dumps(obj)


def trade_payload(
    inst: Instrument,
    seq: int,
    buy: bool,
    prints: list[Print],
    t_ms: int,
    *,
    rpi: Sequence[bool] = (),
    mark: str = "",
) -> bytes:
    """A publicTrade frame: the prints of one taker order (*buy*: the taker bought).

    *rpi*: each print's RPI flag (default all False). Options trade on
    ``publicTrade.{baseCoin}`` with mark price *mark*, index price and IVs, and no RPI flag.
    """
    taker = "Buy" if buy else "Sell"
    topic = f"publicTrade.{inst.symbol}"
    data: list[dict[str, Any]]
    obj: dict[str, Any]
    flags = list(rpi) or [False] * len(prints)
    if inst.category == "option":
        topic = f"publicTrade.{inst.base}"
        data = [
            {
                **_derivative_print(inst, t_ms, taker, p),
                "seq": seq,
                "mP": mark,
                "iP": "95000.00",
                "mIv": "0.4512",
                "iv": "0.4498",
            }
            for p in prints
        ]
        obj = {
            "id": f"{topic}-{seq}",
            "topic": topic,
            "ts": t_ms + 1,
            "data": data,
            "type": "snapshot",
        }
        return orjson.dumps(obj)
    if inst.category == "spot":
        # Spot's field order and numeric-string ids, as recorded; no tick direction.
        data = [
            {
                "i": trade_id,
                "T": t_ms,
                "p": inst.price_str(price),
                "v": inst.size_str(size),
                "S": taker,
                "seq": seq,
                "s": inst.symbol,
                "BT": False,
                "RPI": flag,
            }
            for (price, size, _, trade_id), flag in zip(prints, flags, strict=True)
        ]
        obj = {"topic": topic, "ts": t_ms + 1, "type": "snapshot", "data": data}
    else:
        data = [
            {**_derivative_print(inst, t_ms, taker, p), "RPI": flag, "seq": seq}
            for p, flag in zip(prints, flags, strict=True)
        ]
        obj = {"topic": topic, "type": "snapshot", "ts": t_ms + 1, "data": data}
    return orjson.dumps(obj)


def _derivative_print(inst: Instrument, t_ms: int, taker: str, print_: Print) -> dict[str, Any]:
    """The fields a linear, inverse or option print starts with, in Bybit's order."""
    price, size, direction, trade_id = print_
    return {
        "T": t_ms,
        "s": inst.symbol,
        "S": taker,
        "v": inst.size_str(size),
        "p": inst.price_str(price),
        "L": direction,
        "i": trade_id,
        "BT": False,
    }

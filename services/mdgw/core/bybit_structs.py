"""The typed structs msgspec decodes Bybit data frames into (:mod:`mdgw.core.bybit`).

A module of their own because msgspec reads the field annotations at run time, and mypyc
(see :mod:`mdgw.compiled`) replaces the annotations of classes in modules it compiles with
erased types (``list`` for ``list[list[str]]``): msgspec would then stop checking them.
This module is never compiled. Fields the gateway does not read are not declared, so
msgspec skips them.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "BookData",
    "BookMsg",
    "RpiData",
    "RpiMsg",
    "StatusItem",
    "StatusMsg",
    "TopicOnly",
    "TradeItem",
    "TradeMsg",
]


class BookData(msgspec.Struct):
    s: str
    b: list[list[str]]
    a: list[list[str]]
    u: int
    seq: int = 0  # absent in frames before the cross sequence was added


class BookMsg(msgspec.Struct):
    topic: str
    type: str
    ts: int
    data: BookData
    cts: int = 0  # absent in frames older than Dec 2023


class TradeItem(msgspec.Struct):
    """One trade as Bybit sends it (the JSON types; :func:`trade_from` checks the rest)."""

    T: int
    s: str
    S: str
    v: str
    p: str
    i: str
    BT: bool = False
    seq: int | None = None  # absent (or null) in frames before Aug 2025
    RPI: bool = False  # an RPI trade; absent before mid 2025
    # Options only: mark price, index price, mark IV, IV (decimal strings).
    mark_price: str | None = msgspec.field(default=None, name="mP")
    index_price: str | None = msgspec.field(default=None, name="iP")
    mark_iv: str | None = msgspec.field(default=None, name="mIv")
    iv: str | None = None


class TradeMsg(msgspec.Struct):
    topic: str
    ts: int
    data: list[TradeItem]


class RpiData(msgspec.Struct):
    s: str
    b: list[list[str]]  # [price, non-RPI size, RPI size]
    a: list[list[str]]
    u: int
    seq: int = 0


class RpiMsg(msgspec.Struct):
    """An ``orderbook.rpi.{symbol}`` frame."""

    topic: str
    type: str
    ts: int
    data: RpiData
    cts: int = 0


class StatusItem(msgspec.Struct):
    """One ``system.status`` notice (the JSON types; the decoder checks the rest)."""

    id: str
    begin: str | int  # Bybit documents strings of milliseconds; ints are taken too
    end: str | int
    title: str = ""
    state: str = ""
    href: str = ""
    service_types: list[int] = msgspec.field(default_factory=list, name="serviceTypes")
    product: list[int] = []
    maintain_type: Any = msgspec.field(default="", name="maintainType")
    env: Any = ""


class StatusMsg(msgspec.Struct):
    """A ``system.status`` frame (``/v5/public/misc/status``)."""

    topic: str
    ts: int
    data: list[StatusItem]


class TopicOnly(msgspec.Struct):
    topic: Any = None

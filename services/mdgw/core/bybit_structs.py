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

__all__ = ["BookData", "BookMsg", "TopicOnly", "TradeItem", "TradeMsg"]


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


class TradeMsg(msgspec.Struct):
    topic: str
    ts: int
    data: list[TradeItem]


class TopicOnly(msgspec.Struct):
    topic: Any = None

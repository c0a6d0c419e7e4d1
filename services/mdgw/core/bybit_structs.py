"""The typed structs msgspec decodes Bybit ``orderbook`` frames into (``bybit``'s fast path).

A module of their own because msgspec reads the field annotations at run time, and mypyc
(see :mod:`mdgw.compiled`) replaces the annotations of classes in modules it compiles with
erased types (``list`` for ``list[list[str]]``, ``int`` for the bounded ints): msgspec
would then stop checking them. This module is never compiled.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["FastBook", "FastBookData"]

U63 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class FastBookData(msgspec.Struct):
    s: str
    b: list[list[str]]
    a: list[list[str]]
    u: U63
    seq: U63 = 0


class FastBook(msgspec.Struct):
    topic: str
    type: str
    ts: U63
    data: FastBookData
    cts: U63 = 0

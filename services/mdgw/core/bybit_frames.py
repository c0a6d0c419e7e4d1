"""The decoded Bybit frames: what :func:`mdgw.core.bybit.decode_frame` returns; and
:func:`full_snapshot_frame`, the one Bybit frame the gateway makes itself.

Plain typed records (compiled with the hot path, see :mod:`mdgw.compiled`), built only by the
decoders in :mod:`mdgw.core.bybit` after every check has passed. Prices and sizes stay the
strings Bybit sent; the float beside each is for ordering and for testing a size for zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from mdgw.core.bybit_topics import full_topic
from mdgw.core.errors import ParseError

Level = tuple[float, str, str, float]
"""One book level from a frame: (price key, price string, size string, size as float).

A size of 0 deletes the level. The strings are exactly what Bybit sent."""


@dataclass(slots=True, init=False)
class BookFrame:
    """An ``orderbook.{depth}.{symbol}`` frame.

    Its ``__init__`` is written out (``init=False``): mypyc compiles it, where the one the
    ``dataclass`` decorator generates runs interpreted, some 4,700 instructions a frame
    (docs/performance.md, "Per frame on small frames")."""

    topic: str
    symbol: str
    depth: int
    snapshot: bool  # False: delta
    u: int  # update id: +1 per message of this topic; 1 after a Bybit restart
    seq: int  # cross sequence: monotonic across topics, not contiguous; 0 if absent
    ts: int  # system time (ms)
    cts: int  # matching-engine time (ms); 0 in frames older than Dec 2023
    bids: list[Level]
    asks: list[Level]
    # (u, seq, ts, cts) again, as int objects, when the decode made them so (core/_levels.c
    # scan_book, in the compiled build); else None. The payload's C writer takes them
    # (BookTemplate.render_with_bbo): compiled, the four fields above are native ints, boxed
    # anew each time they are passed to C, where this tuple is passed as it is. Typed
    # tuple[int, ...], not a tuple of four, which mypyc would hold as four native ints too.
    # Not part of the frame's value (compare, repr): a copy of four fields, or None.
    ints: tuple[int, ...] | None = field(default=None, compare=False, repr=False)

    def __init__(  # noqa: PLR0917 (the frame's fields, in order, as a dataclass takes them)
        self,
        topic: str,
        symbol: str,
        depth: int,
        snapshot: bool,
        u: int,
        seq: int,
        ts: int,
        cts: int,
        bids: list[Level],
        asks: list[Level],
        ints: tuple[int, ...] | None = None,
    ) -> None:
        """``ints``, when not None, must be ``(u, seq, ts, cts)`` (the decoder passes
        scan_book's tuple)."""
        self.topic = topic
        self.symbol = symbol
        self.depth = depth
        self.snapshot = snapshot
        self.u = u
        self.seq = seq
        self.ts = ts
        self.cts = cts
        self.bids = bids
        self.asks = asks
        self.ints = ints


class FullFrame(BookFrame):
    """An ``orderbook.full.{symbol}`` frame: a delta, or the REST snapshot the ingestor
    fetched (:func:`full_snapshot_frame`). Its own type so the builder's dispatch by
    ``type()`` sends it to the full-book sync without a test on every ordinary frame."""

    __slots__ = ()


RpiLevel = tuple[float, str, str, str, float]
"""One RPI book level: (price key, price, non-RPI size, RPI size, the two sizes' sum).

A sum of 0 (both sizes zero) deletes the level. The strings are exactly what Bybit sent."""


@dataclass(slots=True)
class RpiFrame:
    """An ``orderbook.rpi.{symbol}`` frame (levels ``[price, non-RPI size, RPI size]``)."""

    topic: str
    symbol: str
    depth: int  # RPI_DEPTH: Bybit's RPI book has 50 levels a side
    snapshot: bool
    u: int
    seq: int
    ts: int
    cts: int
    bids: list[RpiLevel]
    asks: list[RpiLevel]


@dataclass(slots=True, frozen=True)
class StatusNotice:
    """One ``system.status`` record: a maintenance or incident notice."""

    id: str
    title: str
    state: str  # Bybit's words: scheduled, ongoing, completed, canceled (others passed on)
    begin: int  # ms; Bybit sends these as strings of digits
    end: int  # ms: the expected end until the work completes, then the actual end
    href: str
    service_types: tuple[int, ...]
    product: tuple[int, ...]
    maintain_type: str
    env: str


@dataclass(slots=True)
class StatusFrame:
    """A ``system.status`` frame (``/v5/public/misc/status``)."""

    topic: str
    ts: int
    notices: list[StatusNotice]


@dataclass(slots=True, frozen=True)
class Trade:
    """One public trade. ``side`` is the taker side, lower case."""

    id: str
    price: str
    size: str
    side: str  # "buy" | "sell"
    ts: int  # fill time (ms)
    block: bool
    seq: int  # 0 if absent (frames before Aug 2025)
    rpi: bool = False  # an RPI trade (Bybit's "RPI" flag; absent before mid 2025)
    # The instrument when it is not the topic's: option trades come per base coin.
    symbol: str = ""
    # Options only (Bybit's mP, iP, mIv, iv): mark price, index price, mark IV, IV.
    option: tuple[str, str, str, str] | None = None


@dataclass(slots=True)
class TradeFrame:
    """A ``publicTrade.{symbol}`` frame: a batch of trades in Bybit's order."""

    topic: str
    symbol: str
    ts: int
    trades: list[Trade]


def full_snapshot_frame(symbol: str, rest_body: bytes) -> bytes:
    """The REST ``full_orderbook`` answer as a book frame the builder can take in order with
    the deltas: ``{"topic":"orderbook.full.X","type":"snapshot",...,"data":{s,b,a,u,seq}}``.

    ParseError if the body is not a successful Bybit answer for *symbol*.
    """
    topic = full_topic(symbol)
    try:
        obj = orjson.loads(rest_body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {str(exc)[:80]}", topic) from None
    if not isinstance(obj, dict):
        raise ParseError("frame is not a JSON object", topic)
    result = obj.get("result")
    if obj.get("retCode") != 0 or not isinstance(result, dict):
        raise ParseError(f"REST answer retCode {str(obj.get('retCode'))[:20]}", topic)
    if result.get("s") != symbol:
        raise ParseError("REST answer for another symbol", topic)
    data = {k: result.get(k) for k in ("s", "b", "a", "u", "seq")}
    frame = {
        "topic": topic,
        "type": "snapshot",
        "ts": result.get("ts", 0),
        "data": data,
        "cts": result.get("cts", 0),
    }
    return orjson.dumps(frame)

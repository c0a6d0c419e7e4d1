"""The order book of one Bybit v5 ``orderbook.{depth}.{symbol}`` topic, as a state machine.

Sans-I/O: the book takes decoded levels and returns a :class:`BookOutcome`; the shell decides
what to log, publish or resync. The rules (docs/architecture.md "Book rules", Bybit's docs
"Process snapshot/delta"):

- A snapshot, with any ``u`` (``u == 1`` after a Bybit restart; the same ``u`` again on
  ``orderbook.1``, which re-pushes an unchanged top every ~3 s), replaces the whole book.
- A delta is applied only to a live book and only if ``u == last_u + 1``. ``u <= last_u`` is a
  duplicate and is dropped; any other ``u`` is a gap: the book stops being live until the next
  snapshot, because a missed delta cannot be recovered from later ones.
- In a delta, size ``"0"`` deletes the price; any other size is the new absolute size.
- A book whose best bid >= best ask after an apply is wrong, so it stops being live too.

Whenever the book stops being live its levels are dropped: a stale book must never be read
by mistake, and the next snapshot rebuilds it from scratch anyway.

Layout, chosen for the hot path (a delta of a few levels, then a top-N read): per side three
parallel plain lists kept sorted with :mod:`bisect`: the keys, the ``(price, size)`` string
pairs, and each level already serialised as the JSON text ``["price","size"]``. Bid keys are
negated so both sides ascend best first: a top-N read is the slice ``pairs[:n]`` (no sort, no
per-level lookups) and the pairs are the very tuples stored; a published ``book`` payload
joins the first N JSON texts (:meth:`OrderBook.top_json`; in the compiled build C code copies
them into the payload's bytes, :meth:`SyncedBook.level_texts`), so each level is serialised
once, when it changes, instead of once per published book.
The JSON text needs no escaping: the decoder admits only digits and dots in prices and sizes.
A dict ``key -> pair`` beside the keys was tried and dropped: a bisect over at most ``depth``
floats is as cheap as a hash lookup for a delta, and a top-N read would pay one dict lookup
per level instead of one slice. docs/performance.md ("Design decisions") has the numbers.
In the compiled build the update and the fast build of a side run in C (``core/_sides.c``,
the same lists, the bisect on the doubles), and a snapshot of a few levels a side (Bybit's
``orderbook.1`` sends one every frame) is written into the side's own lists rather than new
ones (``refill_side``); this module's functions are what it does.
Keys are ``float(price_str)``; the decoder rejects prices with more than 15 significant
digits, so distinct decimal prices map to distinct floats and ``"65000.5"``/``"65000.50"``
map to the same one.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar, cast

from mdgw.core.bybit import BookFrame, Level

__all__ = ["BookOutcome", "OrderBook", "SyncedBook"]


class BookOutcome(enum.Enum):
    """What applying one frame did to the book. The shell maps these to publish/resync."""

    APPLIED = "applied"  # in-sequence delta applied; the book is live
    RESET = "reset"  # snapshot replaced the book; the book is live
    DUPLICATE = "duplicate"  # delta with u <= last_u: dropped, book unchanged
    GAP = "gap"  # delta with u > last_u + 1: book dropped, not live
    CROSSED = "crossed"  # best bid >= best ask after the apply: book dropped, not live
    NOT_SYNCED = "not_synced"  # delta while not live (no snapshot yet): dropped


_Item = TypeVar("_Item", bound=tuple[str, ...])  # a level as stored: its strings
_Lvl = TypeVar("_Lvl", bound=tuple[object, ...])  # a level as decoded (mdgw.core.bybit)
_INF: Final = float("inf")

# _update_side and _build_side's fast path in C (core/_sides.c), built and served with the
# compiled hot path (mdgw.compiled); absent in the pure-Python build, where the functions
# below run alone. tests/core/test_sides.py holds the C code to them.
_Side = tuple[list[float], list[tuple[str, str]], list[str]]
_update_side_c: (
    Callable[[list[float], list[tuple[str, str]], list[str], Sequence[Level], float, int], None]
    | None
)
_build_side_c: Callable[[Sequence[Level], float, int], _Side | None] | None
_refill_side_c: (
    Callable[
        [list[float], list[tuple[str, str]], list[str], Sequence[Level], float, int], bool | None
    ]
    | None
)
try:
    from mdgw.core._sides import build_side as _build_side_c
    from mdgw.core._sides import refill_side as _refill_side_c
    from mdgw.core._sides import update_side as _update_side_c
except ImportError:
    _update_side_c = _build_side_c = _refill_side_c = None
# Whether a snapshot may refill a side's lists in place (OrderBook._refill_side): one test of
# a C static per side in the compiled build, and in pure Python a test of a global that is
# False, so the pure-Python build runs the code it ran.
_REFILL_IN_C: Final = _refill_side_c is not None
# The same function as a Final name: compiled, a read of a C static, where a read of the
# global above is a lookup in the module's dict (~130 instructions a side). Its sign is
# passed as one of two float objects made once (_BID_SIGN, _ASK_SIGN), not a float boxed
# per call: typed object here for that (the C code reads any float).
_REFILL_C: Final = cast(
    Callable[
        [list[float], list[tuple[str, str]], list[str], Sequence[Level], object, int], bool | None
    ]
    | None,
    _refill_side_c,
)
# Made by a call, not written as literals: mypyc inlines a Final literal at each use, and
# so would box it there again.
_BID_SIGN: Final[object] = float("-1")
_ASK_SIGN: Final[object] = float("1")


class SyncedBook(Generic[_Item, _Lvl]):
    """Bids and asks kept in sync by ``u`` (the module docstring's rules and layout), whatever
    a level holds: :class:`OrderBook` (``(price, size)``) and
    :class:`mdgw.core.rpi_book.RpiBook` (``(price, non_rpi, rpi)``) say how their levels are
    built and updated and when the book is crossed; the sequencing and reads are here, once.

    Both subclasses are compiled with this class (``mdgw.compiled.MODULES``): an interpreted
    subclass of a compiled class would need mypyc's ``allow_interpreted_subclasses``, which
    slows the compiled class down.
    """

    __slots__ = (
        "_ask_json",
        "_ask_keys",
        "_asks",
        "_bid_json",
        "_bid_keys",
        "_bids",
        "_last_u",
        "_live",
        "_max_depth",
    )

    def __init__(self, max_depth: int) -> None:
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        self._max_depth = max_depth
        self._live = False
        self._last_u: int | None = None
        # _bid_keys[i] is -float(price of _bids[i]): ascending keys = descending bids.
        self._bid_keys: list[float] = []
        self._bids: list[_Item] = []
        self._bid_json: list[str] = []  # _bid_json[i] is the JSON text of _bids[i]
        self._ask_keys: list[float] = []
        self._asks: list[_Item] = []
        self._ask_json: list[str] = []

    @property
    def live(self) -> bool:
        """True between a good snapshot and the next gap, crossed book or :meth:`invalidate`."""
        return self._live

    @property
    def last_u(self) -> int | None:
        """``u`` of the last snapshot or in-sequence delta taken in (kept after GAP/CROSSED
        so the shell can report it; ``None`` before the first snapshot and after
        :meth:`invalidate`)."""
        return self._last_u

    @property
    def max_depth(self) -> int:
        return self._max_depth

    @property
    def bid_count(self) -> int:
        return len(self._bid_keys)

    @property
    def ask_count(self) -> int:
        return len(self._ask_keys)

    def apply_snapshot(self, u: int, bids: Sequence[_Lvl], asks: Sequence[_Lvl]) -> BookOutcome:
        """Replace the whole book. Any ``u`` is accepted: Bybit resends snapshots at will."""
        # Compiled, a side of a few levels (orderbook.1: one, every frame) is written into
        # its own lists, no new lists made or old ones freed (docs/performance.md).
        if not (
            _REFILL_IN_C
            and self._refill_side(self._bid_keys, self._bids, self._bid_json, bids, -1.0)
        ):
            self._bid_keys, self._bids, self._bid_json = self._build_side(bids, -1.0)
        if not (
            _REFILL_IN_C
            and self._refill_side(self._ask_keys, self._asks, self._ask_json, asks, 1.0)
        ):
            self._ask_keys, self._asks, self._ask_json = self._build_side(asks, 1.0)
        self._last_u = u
        if self._is_crossed():
            self._drop()
            return BookOutcome.CROSSED
        self._live = True
        return BookOutcome.RESET

    def apply_delta(self, u: int, bids: Sequence[_Lvl], asks: Sequence[_Lvl]) -> BookOutcome:
        """Apply changed levels if ``u`` follows ``last_u``; see :class:`BookOutcome`."""
        last_u = self._last_u
        if not self._live or last_u is None:  # live implies last_u is set; this narrows it
            return BookOutcome.NOT_SYNCED
        if u <= last_u:
            return BookOutcome.DUPLICATE
        if u != last_u + 1:
            self._drop()
            return BookOutcome.GAP
        if bids:
            self._update_side(self._bid_keys, self._bids, self._bid_json, bids, -1.0)
        if asks:
            self._update_side(self._ask_keys, self._asks, self._ask_json, asks, 1.0)
        self._last_u = u
        if self._is_crossed():
            self._drop()
            return BookOutcome.CROSSED
        return BookOutcome.APPLIED

    def invalidate(self) -> None:
        """Forget everything (e.g. the ingestor reconnected): wait for a fresh snapshot."""
        self._drop()
        self._last_u = None

    def top_bids(self, n: int) -> list[_Item]:
        """Up to ``n`` best bids, highest price first, as tuples of strings."""
        return self._bids[:n]

    def top_asks(self, n: int) -> list[_Item]:
        """Up to ``n`` best asks, lowest price first, as tuples of strings."""
        return self._asks[:n]

    def top_json(self, n: int) -> tuple[str, str]:
        """The ``n`` best bids and asks as JSON array bodies: ``'["99.5","1"],["99","2"]'``.

        The ``bids``/``asks`` of a ``book`` payload without their brackets
        (:class:`mdgw.core.wire.BookTemplate`); ``""`` for an empty side.
        """
        return ",".join(self._bid_json[:n]), ",".join(self._ask_json[:n])

    def level_texts(self) -> tuple[list[str], list[str]]:
        """The JSON texts of all bids and all asks, best first: the book's own lists, not
        copies, for :meth:`mdgw.core.wire.BookTemplate.render_texts` to read at once. Never
        changed through them; the next frame changes or replaces them."""
        return self._bid_json, self._ask_json

    def best_json(self) -> tuple[str | None, str | None]:
        """JSON text of the best bid and best ask (None for an empty side): a cheap value
        that changes exactly when :meth:`best_bid` or :meth:`best_ask` does."""
        bids, asks = self._bid_json, self._ask_json
        return (bids[0] if bids else None), (asks[0] if asks else None)

    def best_bid(self) -> _Item | None:
        return self._bids[0] if self._bids else None

    def best_ask(self) -> _Item | None:
        return self._asks[0] if self._asks else None

    def _drop(self) -> None:
        self._live = False
        self._bid_keys, self._bids, self._bid_json = [], [], []
        self._ask_keys, self._asks, self._ask_json = [], [], []

    # What a subclass says about its levels. ``sign`` is -1.0 for bids (module docstring).

    def _build_side(
        self, levels: Sequence[_Lvl], sign: float
    ) -> tuple[list[float], list[_Item], list[str]]:
        """A fresh side from snapshot levels, at most ``max_depth`` of them."""
        raise NotImplementedError

    def _update_side(
        self,
        keys: list[float],
        items: list[_Item],
        texts: list[str],
        levels: Sequence[_Lvl],
        sign: float,
    ) -> None:
        """Apply one side of a delta in place, keeping at most ``max_depth`` levels."""
        raise NotImplementedError

    def _refill_side(
        self,
        keys: list[float],
        items: list[_Item],
        texts: list[str],
        levels: Sequence[_Lvl],
        sign: float,
    ) -> bool:
        """:meth:`_build_side`'s side written into the side's own lists, True; False, the
        lists unchanged, where the side is to be built (the default: always)."""
        return False

    def _is_crossed(self) -> bool:
        raise NotImplementedError


class OrderBook(SyncedBook[tuple[str, str], Level]):
    """Bids and asks of one depth topic, kept in sync by ``u`` (see the module docstring)."""

    __slots__ = ()

    def apply(self, frame: BookFrame) -> BookOutcome:
        """Apply a decoded ``orderbook.*`` frame (snapshot or delta)."""
        if frame.snapshot:
            return self.apply_snapshot(frame.u, frame.bids, frame.asks)
        return self.apply_delta(frame.u, frame.bids, frame.asks)

    def _build_side(
        self, levels: Sequence[Level], sign: float
    ) -> tuple[list[float], list[tuple[str, str]], list[str]]:
        return _build_side(levels, sign, self._max_depth)

    def _update_side(
        self,
        keys: list[float],
        items: list[tuple[str, str]],
        texts: list[str],
        levels: Sequence[Level],
        sign: float,
    ) -> None:
        _update_side(keys, items, texts, levels, sign, self._max_depth)

    def _refill_side(
        self,
        keys: list[float],
        items: list[tuple[str, str]],
        texts: list[str],
        levels: Sequence[Level],
        sign: float,
    ) -> bool:
        refill_c = _REFILL_C
        return refill_c is not None and (
            refill_c(
                keys, items, texts, levels, _BID_SIGN if sign < 0.0 else _ASK_SIGN, self._max_depth
            )
            is not None
        )

    def _is_crossed(self) -> bool:
        bid_keys, ask_keys = self._bid_keys, self._ask_keys
        return bool(bid_keys) and bool(ask_keys) and -bid_keys[0] >= ask_keys[0]


def _build_side(
    levels: Sequence[Level], sign: float, depth: int
) -> tuple[list[float], list[tuple[str, str]], list[str]]:
    """A fresh side from snapshot levels. ``sign`` is -1.0 for bids (see module docstring).

    Bybit sends a snapshot's levels best first, each price once, no size 0: such a side is
    taken as it comes (no dict, no sort); anything else goes the general way below."""
    build_c = _build_side_c  # one read of the global: compiled, each is a dict lookup
    if build_c is not None:  # this fast path in C; None where it falls back
        side = build_c(levels, sign, depth)
        return _build_side_any(levels, sign, depth) if side is None else side
    keys: list[float] = []
    pairs: list[tuple[str, str]] = []
    texts: list[str] = []
    last = -_INF
    for key, price, size, qty in levels:
        k = key * sign
        if k <= last or qty == 0.0:
            return _build_side_any(levels, sign, depth)
        last = k
        keys.append(k)
        pairs.append((price, size))
        texts.append(f'["{price}","{size}"]')
    if len(keys) > depth:
        del keys[depth:], pairs[depth:], texts[depth:]
    return keys, pairs, texts


def _build_side_any(
    levels: Sequence[Level], sign: float, depth: int
) -> tuple[list[float], list[tuple[str, str]], list[str]]:
    """:func:`_build_side` for levels in any order, with repeats or sizes of 0."""
    side: dict[float, tuple[str, str]] = {}
    # A loop rather than a comprehension so that, as in a delta, the last entry for a price
    # wins and a size-0 entry removes the price (Bybit sends neither in snapshots, but one
    # rule for both frame types is easier to reason about).
    for key, price, size, qty in levels:
        if qty == 0.0:
            side.pop(key * sign, None)
        else:
            side[key * sign] = (price, size)
    keys = sorted(side)[:depth]
    pairs = [side[k] for k in keys]
    return keys, pairs, [f'["{price}","{size}"]' for price, size in pairs]


def _update_side(  # noqa: PLR0917 (positional on purpose: runs per delta)
    keys: list[float],
    pairs: list[tuple[str, str]],
    texts: list[str],
    levels: Sequence[Level],
    sign: float,
    depth: int,
) -> None:
    """Apply one side of a delta in place: size 0 deletes, anything else inserts or replaces
    (with this delta's strings, so ``"65000.50"`` replacing ``"65000.5"`` is published as sent).
    """
    update_c = _update_side_c  # one read of the global: compiled, each is a dict lookup
    if update_c is not None:  # the same in C
        update_c(keys, pairs, texts, levels, sign, depth)
        return
    for key, price, size, qty in levels:
        k = key * sign
        i = bisect_left(keys, k)
        if i < len(keys) and keys[i] == k:
            if qty == 0.0:
                del keys[i]
                del pairs[i]
                del texts[i]
            else:
                pairs[i] = (price, size)
                texts[i] = f'["{price}","{size}"]'
        elif qty != 0.0:
            keys.insert(i, k)
            pairs.insert(i, (price, size))
            texts.insert(i, f'["{price}","{size}"]')
        # else: deleting an absent price is a no-op (it may be a level truncated away).
    # Bybit sends a size-0 delete for every level that leaves the depth window, so this only
    # fires on a misbehaving feed; it keeps memory and top-N reads bounded regardless.
    if len(keys) > depth:
        del keys[depth:]
        del pairs[depth:]
        del texts[depth:]

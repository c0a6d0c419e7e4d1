"""Tests for mdgw.core.book: one test per rule, then a state machine against a naive model."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mdgw.core.book import BookOutcome, OrderBook
from mdgw.core.bybit import BookFrame, Level
from mdgw.testing.examples import examples


def lv(price: str, size: str) -> Level:
    """A decoded level, built the way the decoder builds it."""
    return (float(price), price, size, float(size))


def book_with(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]], *, u: int = 100, depth: int = 50
) -> OrderBook:
    book = OrderBook(depth)
    outcome = book.apply_snapshot(u, [lv(*b) for b in bids], [lv(*a) for a in asks])
    assert outcome is BookOutcome.RESET
    return book


BIDS = [("99.5", "1"), ("99", "2"), ("98", "3")]
ASKS = [("100", "4"), ("100.5", "5"), ("101", "6")]


# --- snapshots -------------------------------------------------------------------------------


def test_book_starts_not_live_and_empty() -> None:
    book = OrderBook(50)
    assert not book.live
    assert book.last_u is None
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.top_bids(5) == [] and book.top_asks(5) == []
    assert book.bid_count == book.ask_count == 0


def test_max_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OrderBook(0)


def test_snapshot_resets_and_sorts_best_first() -> None:
    book = OrderBook(50)
    # Deliberately unsorted input: ordering must come from the book, not from Bybit.
    outcome = book.apply_snapshot(
        7, [lv("98", "3"), lv("99.5", "1"), lv("99", "2")], [lv("101", "6"), lv("100", "4")]
    )
    assert outcome is BookOutcome.RESET
    assert book.live
    assert book.last_u == 7
    assert book.top_bids(10) == [("99.5", "1"), ("99", "2"), ("98", "3")]
    assert book.top_asks(10) == [("100", "4"), ("101", "6")]
    assert book.best_bid() == ("99.5", "1")
    assert book.best_ask() == ("100", "4")
    assert book.top_bids(2) == [("99.5", "1"), ("99", "2")]
    assert (book.bid_count, book.ask_count) == (3, 2)


def test_snapshot_replaces_previous_contents() -> None:
    book = book_with(BIDS, ASKS)
    assert book.apply_snapshot(500, [lv("50", "1")], [lv("60", "1")]) is BookOutcome.RESET
    assert book.top_bids(10) == [("50", "1")]
    assert book.top_asks(10) == [("60", "1")]


def test_empty_snapshot_is_a_live_empty_book() -> None:
    # Bybit resets a delisted symbol with u=1 and empty sides.
    book = book_with(BIDS, ASKS)
    assert book.apply_snapshot(1, [], []) is BookOutcome.RESET
    assert book.live
    assert book.best_bid() is None and book.best_ask() is None


def test_u1_snapshot_after_high_u_resets() -> None:
    book = book_with(BIDS, ASKS, u=20_254_918)
    assert book.apply_snapshot(1, [lv("10", "1")], [lv("11", "1")]) is BookOutcome.RESET
    assert book.last_u == 1
    assert book.live
    assert book.apply_delta(2, [lv("10.5", "2")], []) is BookOutcome.APPLIED
    assert book.top_bids(5) == [("10.5", "2"), ("10", "1")]


def test_level1_same_u_resend_is_a_reset_not_a_duplicate() -> None:
    # orderbook.1 re-pushes an unchanged snapshot with the same u about every 3 s.
    book = OrderBook(1)
    for _ in range(3):
        assert book.apply_snapshot(42, [lv("99", "1")], [lv("100", "2")]) is BookOutcome.RESET
        assert book.live
        assert book.last_u == 42
        assert book.best_bid() == ("99", "1")
        assert book.best_ask() == ("100", "2")


def test_crossed_snapshot_is_not_live() -> None:
    book = book_with(BIDS, ASKS)
    assert book.apply_snapshot(200, [lv("100", "1")], [lv("100", "1")]) is BookOutcome.CROSSED
    assert not book.live
    assert book.best_bid() is None and book.best_ask() is None
    assert book.last_u == 200
    assert book.apply_delta(201, [], []) is BookOutcome.NOT_SYNCED


def test_snapshot_level_of_size_zero_is_no_level() -> None:
    book = OrderBook(50)
    outcome = book.apply_snapshot(1, [lv("2", "1"), lv("3", "0"), lv("2", "0")], [lv("4", "1")])
    assert outcome is BookOutcome.RESET
    assert book.bid_count == 0
    assert book.top_asks(5) == [("4", "1")]


def test_snapshot_truncates_to_depth() -> None:
    book = OrderBook(2)
    outcome = book.apply_snapshot(1, [lv(p, "1") for p in ("1", "3", "2")], [lv("9", "1")])
    assert outcome is BookOutcome.RESET
    assert book.top_bids(10) == [("3", "1"), ("2", "1")]
    assert book.bid_count == 2


def test_snapshot_in_bybit_order_truncates_to_depth() -> None:
    # Best first, as Bybit sends it (the side is taken as it comes): still cut to the depth.
    book = OrderBook(2)
    bids = [lv(p, "1") for p in ("3", "2", "1")]
    asks = [lv(p, "1") for p in ("4", "5", "6")]
    assert book.apply_snapshot(1, bids, asks) is BookOutcome.RESET
    assert book.top_bids(10) == [("3", "1"), ("2", "1")]
    assert book.top_asks(10) == [("4", "1"), ("5", "1")]
    assert orjson.loads(f"[{book.top_json(10)[1]}]") == [["4", "1"], ["5", "1"]]


def test_snapshot_repeating_a_price_keeps_the_last_entry() -> None:
    # A repeat (or a size 0 after a level) in an otherwise sorted side: the general rule.
    book = OrderBook(50)
    bids = [lv("3", "1"), lv("3", "7"), lv("2", "1"), lv("1.0", "1"), lv("1", "0")]
    assert book.apply_snapshot(1, bids, [lv("4", "1")]) is BookOutcome.RESET
    assert book.top_bids(10) == [("3", "7"), ("2", "1")]


# --- deltas ----------------------------------------------------------------------------------


def test_delta_before_any_snapshot_is_not_synced() -> None:
    book = OrderBook(50)
    assert book.apply_delta(1, [lv("1", "1")], []) is BookOutcome.NOT_SYNCED
    assert book.bid_count == 0
    assert book.last_u is None


def test_delta_inserts_replaces_and_deletes() -> None:
    book = book_with(BIDS, ASKS, u=100)
    outcome = book.apply_delta(
        101,
        [lv("99.7", "7"), lv("99", "2.5"), lv("98", "0")],
        [lv("100", "0"), lv("102", "8")],
    )
    assert outcome is BookOutcome.APPLIED
    assert book.live
    assert book.last_u == 101
    assert book.top_bids(10) == [("99.7", "7"), ("99.5", "1"), ("99", "2.5")]
    assert book.top_asks(10) == [("100.5", "5"), ("101", "6"), ("102", "8")]


def test_zero_size_written_with_decimals_deletes() -> None:
    book = book_with(BIDS, ASKS)
    assert book.apply_delta(101, [lv("99.5", "0.000")], []) is BookOutcome.APPLIED
    assert book.best_bid() == ("99", "2")


def test_delete_of_absent_level_is_a_noop() -> None:
    book = book_with(BIDS, ASKS)
    assert book.apply_delta(101, [lv("50", "0")], [lv("200", "0")]) is BookOutcome.APPLIED
    assert book.top_bids(10) == BIDS
    assert book.top_asks(10) == ASKS


def test_empty_delta_advances_u() -> None:
    book = book_with(BIDS, ASKS)
    assert book.apply_delta(101, [], []) is BookOutcome.APPLIED
    assert book.last_u == 101


def test_same_price_with_different_string_is_the_same_level() -> None:
    book = book_with([("65000.5", "1")], [("65001", "1")])
    assert book.apply_delta(101, [lv("65000.50", "2")], []) is BookOutcome.APPLIED
    # One level, now published with the string of the latest delta.
    assert book.top_bids(10) == [("65000.50", "2")]
    assert book.apply_delta(102, [], [lv("65001.0", "3")]) is BookOutcome.APPLIED
    assert book.top_asks(10) == [("65001.0", "3")]
    # ...and a delete spelled differently removes it.
    assert book.apply_delta(103, [lv("65000.500", "0")], []) is BookOutcome.APPLIED
    assert book.bid_count == 0


def test_last_entry_for_a_price_within_a_frame_wins() -> None:
    book = book_with(BIDS, ASKS)
    outcome = book.apply_delta(
        101, [lv("97", "1"), lv("97.0", "9"), lv("99", "0"), lv("99", "4")], []
    )
    assert outcome is BookOutcome.APPLIED
    assert book.top_bids(10) == [("99.5", "1"), ("99", "4"), ("98", "3"), ("97.0", "9")]


def test_duplicate_delta_is_dropped() -> None:
    book = book_with(BIDS, ASKS, u=100)
    assert book.apply_delta(100, [lv("99.9", "1")], []) is BookOutcome.DUPLICATE
    assert book.apply_delta(3, [lv("99.9", "1")], []) is BookOutcome.DUPLICATE
    assert book.live
    assert book.last_u == 100
    assert book.top_bids(10) == BIDS


def test_gap_drops_the_book_until_the_next_snapshot() -> None:
    book = book_with(BIDS, ASKS, u=100)
    assert book.apply_delta(102, [lv("99.9", "1")], []) is BookOutcome.GAP
    assert not book.live
    assert book.last_u == 100  # kept so the shell can report "expected 101, got 102"
    assert book.top_bids(10) == [] and book.top_asks(10) == []
    # Even the delta that would have been next is refused now.
    assert book.apply_delta(101, [lv("99.9", "1")], []) is BookOutcome.NOT_SYNCED
    assert book.apply_snapshot(300, [lv("1", "1")], [lv("2", "1")]) is BookOutcome.RESET
    assert book.apply_delta(301, [], []) is BookOutcome.APPLIED


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ([lv("100", "1")], []),  # bid == best ask
        ([lv("100.5", "1")], []),  # bid through the ask
        ([], [lv("99.5", "1")]),  # ask == best bid
        ([], [lv("98", "1")]),  # ask through the bid
    ],
)
def test_crossing_delta_drops_the_book(bids: list[Level], asks: list[Level]) -> None:
    book = book_with(BIDS, ASKS, u=100)
    assert book.apply_delta(101, bids, asks) is BookOutcome.CROSSED
    assert not book.live
    assert book.last_u == 101
    assert book.best_bid() is None and book.best_ask() is None
    assert book.apply_delta(102, [], []) is BookOutcome.NOT_SYNCED


def test_delta_that_deletes_the_crossing_level_in_the_same_frame_is_fine() -> None:
    book = book_with(BIDS, ASKS, u=100)
    outcome = book.apply_delta(101, [lv("100", "1")], [lv("100", "0")])
    assert outcome is BookOutcome.APPLIED
    assert book.best_bid() == ("100", "1")
    assert book.best_ask() == ("100.5", "5")


def test_delta_truncates_to_depth() -> None:
    book = book_with([("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")], depth=2)
    assert book.apply_delta(101, [lv("9.5", "2"), lv("8", "1")], [lv("10.5", "3")]) is (
        BookOutcome.APPLIED
    )
    assert book.top_bids(10) == [("10", "1"), ("9.5", "2")]
    assert book.top_asks(10) == [("10.5", "3"), ("11", "1")]
    # A later delete of a level that was truncated away is a harmless no-op.
    assert book.apply_delta(102, [lv("9", "0")], [lv("12", "0")]) is BookOutcome.APPLIED
    assert book.top_bids(10) == [("10", "1"), ("9.5", "2")]


def test_invalidate_forgets_everything() -> None:
    book = book_with(BIDS, ASKS, u=100)
    book.invalidate()
    assert not book.live
    assert book.last_u is None
    assert book.best_bid() is None
    assert book.apply_delta(101, [], []) is BookOutcome.NOT_SYNCED
    assert book.apply_snapshot(5, [lv("1", "1")], []) is BookOutcome.RESET


def _frame(*, snapshot: bool, u: int, bids: list[Level], asks: list[Level]) -> BookFrame:
    return BookFrame(
        topic="orderbook.50.BTCUSDT",
        symbol="BTCUSDT",
        depth=50,
        snapshot=snapshot,
        u=u,
        seq=1000 + u,
        ts=1_700_000_000_000,
        cts=1_700_000_000_000,
        bids=bids,
        asks=asks,
    )


def test_apply_dispatches_on_frame_type() -> None:
    book = OrderBook(50)
    assert book.apply(_frame(snapshot=False, u=1, bids=[], asks=[])) is BookOutcome.NOT_SYNCED
    snap = _frame(snapshot=True, u=10, bids=[lv("1", "1")], asks=[lv("2", "1")])
    assert book.apply(snap) is BookOutcome.RESET
    delta = _frame(snapshot=False, u=11, bids=[lv("1.5", "1")], asks=[])
    assert book.apply(delta) is BookOutcome.APPLIED
    assert book.best_bid() == ("1.5", "1")


# --- state machine against a naive reference -------------------------------------------------

_Side = dict[Decimal, tuple[str, str]]


class ReferenceBook:
    """The book rules of docs/architecture.md written the obvious way: Decimal keys, sort on every read."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.live = False
        self.last_u: int | None = None
        self.bids: _Side = {}
        self.asks: _Side = {}

    def top_bids(self, n: int) -> list[tuple[str, str]]:
        return [self.bids[p] for p in sorted(self.bids, reverse=True)][:n]

    def top_asks(self, n: int) -> list[tuple[str, str]]:
        return [self.asks[p] for p in sorted(self.asks)][:n]

    def _merge(self, side: _Side, levels: list[tuple[str, str]], *, descending: bool) -> None:
        for price, size in levels:
            if Decimal(size) == 0:
                side.pop(Decimal(price), None)
            else:
                side[Decimal(price)] = (price, size)
        for p in sorted(side, reverse=descending)[self.depth :]:
            del side[p]

    def _crossed(self) -> bool:
        return bool(self.bids) and bool(self.asks) and max(self.bids) >= min(self.asks)

    def _clear(self) -> None:
        self.live = False
        self.bids, self.asks = {}, {}

    def snapshot(
        self, u: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> BookOutcome:
        self.bids, self.asks = {}, {}
        self._merge(self.bids, bids, descending=True)
        self._merge(self.asks, asks, descending=False)
        self.last_u = u
        if self._crossed():
            self._clear()
            return BookOutcome.CROSSED
        self.live = True
        return BookOutcome.RESET

    def delta(
        self, u: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> BookOutcome:
        if not self.live:
            return BookOutcome.NOT_SYNCED
        assert self.last_u is not None
        if u <= self.last_u:
            return BookOutcome.DUPLICATE
        if u > self.last_u + 1:
            self._clear()
            return BookOutcome.GAP
        self._merge(self.bids, bids, descending=True)
        self._merge(self.asks, asks, descending=False)
        self.last_u = u
        if self._crossed():
            self._clear()
            return BookOutcome.CROSSED
        return BookOutcome.APPLIED

    def invalidate(self) -> None:
        self._clear()
        self.last_u = None


def _spellings(ticks: int) -> st.SearchStrategy[str]:
    """One price (``ticks`` * 0.25) in its plain form or with trailing zeros."""
    value = Decimal(ticks) / 4
    plain = format(value.normalize(), "f")
    return st.sampled_from(
        [plain, format(value, ".2f"), format(value, ".4f"), plain + ("" if "." in plain else ".0")]
    )


# Bids live on ticks 1..40 (0.25..10.00) and asks on 41..80 (10.25..20.00) so ordinary deltas
# never cross; crossing is exercised by dedicated rules. A small range makes prices collide often.
def _price(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).flatmap(_spellings)


_sizes = st.sampled_from(["1", "0.5", "2.000", "0.001", "13.37", "7"])
_zero = st.sampled_from(["0", "0.0", "0.000"])


# Bybit never sends size 0 in a snapshot, but the book treats it as in a delta; cover that too.
_snap_bids = st.lists(st.tuples(_price(1, 40), st.one_of(_sizes, _sizes, _zero)), max_size=12)
_snap_asks = st.lists(st.tuples(_price(41, 80), st.one_of(_sizes, _sizes, _zero)), max_size=12)
_delta_bids = st.lists(st.tuples(_price(1, 40), st.one_of(_sizes, _zero)), max_size=5)
_delta_asks = st.lists(st.tuples(_price(41, 80), st.one_of(_sizes, _zero)), max_size=5)


def _to_levels(levels: list[tuple[str, str]]) -> list[Level]:
    return [lv(p, s) for p, s in levels]


class BookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook(1)
        self.ref = ReferenceBook(1)

    @initialize(depth=st.sampled_from([1, 3, 8, 50]))
    def make_books(self, depth: int) -> None:
        self.book = OrderBook(depth)
        self.ref = ReferenceBook(depth)

    def _snapshot(self, u: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        got = self.book.apply_snapshot(u, _to_levels(bids), _to_levels(asks))
        assert got is self.ref.snapshot(u, bids, asks)

    def _delta(self, u: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        got = self.book.apply_delta(u, _to_levels(bids), _to_levels(asks))
        assert got is self.ref.delta(u, bids, asks)

    @rule(u=st.integers(1, 10**9), bids=_snap_bids, asks=_snap_asks)
    def snapshot(self, u: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self._snapshot(u, bids, asks)

    @rule(bids=_snap_bids, asks=_snap_asks)
    def reset_to_u1(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self._snapshot(1, bids, asks)

    @precondition(lambda self: self.ref.last_u is not None)
    @rule(bids=_snap_bids, asks=_snap_asks)
    def resend_same_u(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        assert self.ref.last_u is not None
        self._snapshot(self.ref.last_u, bids, asks)

    @rule(u=st.integers(1, 10**9), price=_price(30, 60), bids=_snap_bids, asks=_snap_asks)
    def crossed_snapshot(
        self, u: int, price: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> None:
        # The same price on both sides is crossed whatever else the sides hold.
        self._snapshot(u, [*bids, (price, "1")], [(price, "2"), *asks])

    @rule(data=st.data(), bids=_delta_bids, asks=_delta_asks)
    def next_delta(
        self, data: st.DataObject, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> None:
        # Contiguous when we have a last_u; otherwise any u (a delta before a snapshot).
        last_u = self.ref.last_u
        u = last_u + 1 if last_u is not None else data.draw(st.integers(1, 10**9))
        self._delta(u, bids, asks)

    @precondition(lambda self: self.ref.live)
    @rule(frames=st.lists(st.tuples(_delta_bids, _delta_asks), min_size=2, max_size=8))
    def burst_of_deltas(self, frames: list[tuple[list[tuple[str, str]], ...]]) -> None:
        # Several contiguous deltas in one step: long live runs are where bugs accumulate.
        for bids, asks in frames:
            assert self.ref.last_u is not None
            self._delta(self.ref.last_u + 1, bids, asks)

    @precondition(lambda self: self.ref.live and bool(self.ref.bids or self.ref.asks))
    @rule(data=st.data())
    def touch_existing_levels(self, data: st.DataObject) -> None:
        # Random prices rarely hit a level; this delta replaces or deletes levels that exist,
        # spelled the same or differently ("10.5" vs "10.50"), so replace/delete get exercised.
        sides = []
        for side in (self.ref.bids, self.ref.asks):
            chosen = data.draw(st.lists(st.sampled_from(sorted(side)), max_size=4)) if side else []
            sides.append(
                [
                    (data.draw(_spellings(int(p * 4))), data.draw(st.one_of(_sizes, _zero)))
                    for p in chosen
                ]
            )
        assert self.ref.last_u is not None
        self._delta(self.ref.last_u + 1, sides[0], sides[1])

    @precondition(lambda self: self.ref.last_u is not None)
    @rule(back=st.one_of(st.just(0), st.integers(0, 5)), bids=_delta_bids, asks=_delta_asks)
    def duplicate_delta(
        self, back: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> None:
        assert self.ref.last_u is not None
        self._delta(self.ref.last_u - back, bids, asks)

    @precondition(lambda self: self.ref.last_u is not None)
    @rule(ahead=st.integers(2, 1000), bids=_delta_bids)
    def gap_delta(self, ahead: int, bids: list[tuple[str, str]]) -> None:
        assert self.ref.last_u is not None
        self._delta(self.ref.last_u + ahead, bids, [])

    @precondition(lambda self: self.ref.live and bool(self.ref.asks))
    @rule(data=st.data(), bid_side=st.booleans())
    def crossing_delta(self, data: st.DataObject, bid_side: bool) -> None:
        assert self.ref.last_u is not None
        if bid_side:  # a bid at or through the best ask
            best_ask = min(self.ref.asks)
            ticks = data.draw(st.integers(int(best_ask * 4), 80))
            bids, asks = [(data.draw(_spellings(ticks)), "1")], []
        else:  # an ask at or through the best bid, if there is one
            if not self.ref.bids:
                return
            best_bid = max(self.ref.bids)
            ticks = data.draw(st.integers(1, int(best_bid * 4)))
            bids, asks = [], [(data.draw(_spellings(ticks)), "1")]
        self._delta(self.ref.last_u + 1, bids, asks)

    @rule()
    def invalidate(self) -> None:
        self.book.invalidate()
        self.ref.invalidate()

    @invariant()
    def same_state(self) -> None:
        assert self.book.live == self.ref.live
        assert self.book.last_u == self.ref.last_u
        for n in (1, 2, 5, 25, 1000):
            assert self.book.top_bids(n) == self.ref.top_bids(n)
            assert self.book.top_asks(n) == self.ref.top_asks(n)
        for n in (1, 25, 1000):  # the pre-serialised levels the builder publishes
            bids_json, asks_json = self.book.top_json(n)
            assert orjson.loads(f"[{bids_json}]") == [list(x) for x in self.ref.top_bids(n)]
            assert orjson.loads(f"[{asks_json}]") == [list(x) for x in self.ref.top_asks(n)]
        assert self.book.best_json() == tuple(side or None for side in self.book.top_json(1))
        # The texts the compiled build's book payload reads (BookTemplate.render_texts).
        bid_texts, ask_texts = self.book.level_texts()
        for n in (1, 25, 1000):
            assert self.book.top_json(n) == (",".join(bid_texts[:n]), ",".join(ask_texts[:n]))
        assert self.book.bid_count == len(self.ref.bids)
        assert self.book.ask_count == len(self.ref.asks)
        assert self.book.bid_count <= self.book.max_depth
        assert self.book.ask_count <= self.book.max_depth

    @invariant()
    def never_crossed_while_live(self) -> None:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if self.book.live and bid is not None and ask is not None:
            assert Decimal(bid[0]) < Decimal(ask[0])
        if not self.book.live:
            assert bid is None and ask is None


BookMachine.TestCase.settings = settings(
    max_examples=examples(100),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_book_state_machine = BookMachine.TestCase

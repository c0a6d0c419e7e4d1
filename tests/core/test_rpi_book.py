"""Tests for mdgw.core.rpi_book: the rules one by one, then a state machine against a naive
model (the same shape as tests/core/test_book.py)."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mdgw.core.book import BookOutcome
from mdgw.core.bybit import RpiFrame, RpiLevel, decode_frame
from mdgw.core.rpi_book import RpiBook
from mdgw.testing.examples import examples

Raw = tuple[str, str, str]


def lv(price: str, non_rpi: str, rpi: str) -> RpiLevel:
    return (float(price), price, non_rpi, rpi, float(non_rpi) + float(rpi))


def levels(raw: list[Raw]) -> list[RpiLevel]:
    return [lv(*r) for r in raw]


def test_rpi_frame_decodes_to_triples_and_applies() -> None:
    frame = decode_frame(
        b'{"topic":"orderbook.rpi.BTCUSDT","ts":1752472188075,"type":"snapshot","data":'
        b'{"s":"BTCUSDT","b":[["121975.1","0.114259","0"],["121960.5","0","0.163986"]],'
        b'"a":[["121990.8","0.441585","0.78821"]],"u":2258980,"seq":79683241099},"cts":7}'
    )
    book = RpiBook(50)
    assert isinstance(frame, RpiFrame)
    assert book.apply(frame) is BookOutcome.RESET
    assert book.top_bids(5) == [("121975.1", "0.114259", "0"), ("121960.5", "0", "0.163986")]
    _, asks = book.top_json(5)
    assert orjson.loads(f"[{asks}]") == [["121990.8", "0.441585", "0.78821"]]
    assert book.last_u == 2258980


@pytest.mark.parametrize(
    "frame",
    [
        b'{"topic":"orderbook.rpi.X","ts":1,"type":"delta","data":{"s":"X","b":[["1","2"]],"a":[],"u":1}}',
        b'{"topic":"orderbook.rpi.X","ts":1,"type":"delta","data":{"s":"X","b":[["1","2","x"]],"a":[],"u":1}}',
        b'{"topic":"orderbook.rpi.X","ts":1,"type":"delta","data":{"s":"Y","b":[],"a":[],"u":1}}',
        b'{"topic":"orderbook.rpi.X","ts":1,"type":"what","data":{"s":"X","b":[],"a":[],"u":1}}',
        b'{"topic":"orderbook.rpi.X","ts":1,"type":"delta","data":{"s":"X","b":[],"a":[]}}',
    ],
)
def test_bad_rpi_frames_are_parse_errors(frame: bytes) -> None:
    from mdgw.core.errors import ParseError

    with pytest.raises(ParseError) as info:
        decode_frame(frame)
    assert info.value.topic == "orderbook.rpi.X"


def test_level_with_both_sizes_zero_is_removed_one_zero_keeps_the_other() -> None:
    book = RpiBook(50)
    book.apply_snapshot(
        10, levels([("99", "1", "0"), ("98", "2", "3")]), levels([("100", "1", "1")])
    )
    out = book.apply_delta(11, levels([("99", "0", "0"), ("98", "0", "3")]), [])
    assert out is BookOutcome.APPLIED
    assert book.top_bids(5) == [("98", "0", "3")]


def test_sequencing_rules_match_the_ordinary_book() -> None:
    book = RpiBook(50)
    assert book.apply_delta(5, [], []) is BookOutcome.NOT_SYNCED
    book.apply_snapshot(10, levels([("99", "1", "0")]), levels([("100", "1", "0")]))
    assert book.apply_delta(10, [], []) is BookOutcome.DUPLICATE
    assert book.apply_delta(12, [], []) is BookOutcome.GAP
    assert not book.live and book.top_bids(5) == []
    assert book.apply_snapshot(1, [], []) is BookOutcome.RESET  # u = 1 after a Bybit restart


def test_crossed_only_on_non_rpi_sizes() -> None:
    book = RpiBook(50)
    # RPI-only bid above an RPI-only ask: not a broken book by Bybit's hiding rule.
    ok = book.apply_snapshot(
        1,
        levels([("101", "0", "1"), ("99", "1", "0")]),
        levels([("100.5", "0", "2"), ("102", "1", "0")]),
    )
    assert ok is BookOutcome.RESET
    assert book.apply_delta(2, levels([("102", "1", "0")]), []) is BookOutcome.CROSSED
    assert not book.live


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RpiBook(0)


_Side = dict[Decimal, Raw]


class ReferenceRpiBook:
    """Decimal keys, sort on every read, crossed by the best non-RPI prices."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.live = False
        self.last_u: int | None = None
        self.bids: _Side = {}
        self.asks: _Side = {}

    def top(self, side: _Side, n: int, *, bids: bool) -> list[Raw]:
        return [side[p] for p in sorted(side, reverse=bids)][:n]

    def _merge(self, side: _Side, raw: list[Raw], *, descending: bool) -> None:
        for price, non_rpi, rpi in raw:
            if Decimal(non_rpi) + Decimal(rpi) == 0:
                side.pop(Decimal(price), None)
            else:
                side[Decimal(price)] = (price, non_rpi, rpi)
        for p in sorted(side, reverse=descending)[self.depth :]:
            del side[p]

    def _crossed(self) -> bool:
        bids = [p for p, t in self.bids.items() if Decimal(t[1]) != 0]
        asks = [p for p, t in self.asks.items() if Decimal(t[1]) != 0]
        return bool(bids) and bool(asks) and max(bids) >= min(asks)

    def _clear(self) -> None:
        self.live = False
        self.bids, self.asks = {}, {}

    def snapshot(self, u: int, bids: list[Raw], asks: list[Raw]) -> BookOutcome:
        self.bids, self.asks = {}, {}
        self._merge(self.bids, bids, descending=True)
        self._merge(self.asks, asks, descending=False)
        self.last_u = u
        if self._crossed():
            self._clear()
            return BookOutcome.CROSSED
        self.live = True
        return BookOutcome.RESET

    def delta(self, u: int, bids: list[Raw], asks: list[Raw]) -> BookOutcome:
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
    value = Decimal(ticks) / 4
    plain = format(value.normalize(), "f")
    return st.sampled_from([plain, format(value, ".2f"), format(value, ".4f")])


def _price(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).flatmap(_spellings)


_size = st.sampled_from(["1", "0.5", "2.000", "0.001", "0", "0.0"])
_sizes = st.tuples(_size, _size)
# Non-RPI bids on ticks 1..40, asks 41..80; RPI size may sit anywhere in that range too, and
# "RPI over the touch" levels are drawn by a dedicated rule.
_bid = st.builds(lambda p, s: (p, *s), _price(1, 40), _sizes)
_ask = st.builds(lambda p, s: (p, *s), _price(41, 80), _sizes)
_snap_bids = st.lists(_bid, max_size=12)
_snap_asks = st.lists(_ask, max_size=12)
_delta_bids = st.lists(_bid, max_size=5)
_delta_asks = st.lists(_ask, max_size=5)


class RpiBookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = RpiBook(1)
        self.ref = ReferenceRpiBook(1)

    @initialize(depth=st.sampled_from([1, 3, 8, 50]))
    def make_books(self, depth: int) -> None:
        self.book = RpiBook(depth)
        self.ref = ReferenceRpiBook(depth)

    def _snapshot(self, u: int, bids: list[Raw], asks: list[Raw]) -> None:
        assert self.book.apply_snapshot(u, levels(bids), levels(asks)) is self.ref.snapshot(
            u, bids, asks
        )

    def _delta(self, u: int, bids: list[Raw], asks: list[Raw]) -> None:
        assert self.book.apply_delta(u, levels(bids), levels(asks)) is self.ref.delta(u, bids, asks)

    @rule(u=st.integers(1, 10**9), bids=_snap_bids, asks=_snap_asks)
    def snapshot(self, u: int, bids: list[Raw], asks: list[Raw]) -> None:
        self._snapshot(u, bids, asks)

    @rule(data=st.data(), bids=_delta_bids, asks=_delta_asks)
    def next_delta(self, data: st.DataObject, bids: list[Raw], asks: list[Raw]) -> None:
        last_u = self.ref.last_u
        u = last_u + 1 if last_u is not None else data.draw(st.integers(1, 10**9))
        self._delta(u, bids, asks)

    @precondition(lambda self: self.ref.live)
    @rule(frames=st.lists(st.tuples(_delta_bids, _delta_asks), min_size=2, max_size=8))
    def burst_of_deltas(self, frames: list[tuple[list[Raw], list[Raw]]]) -> None:
        for bids, asks in frames:
            assert self.ref.last_u is not None
            self._delta(self.ref.last_u + 1, bids, asks)

    @precondition(lambda self: self.ref.live)
    @rule(price=_price(30, 60), rpi=st.sampled_from(["1", "0.5"]), bid_side=st.booleans())
    def rpi_over_the_touch(self, price: str, rpi: str, bid_side: bool) -> None:
        # RPI-only size past the opposite side's prices: never a crossed book by itself.
        assert self.ref.last_u is not None
        level = [(price, "0", rpi)]
        self._delta(self.ref.last_u + 1, level if bid_side else [], [] if bid_side else level)

    @precondition(lambda self: self.ref.live and bool(self.ref.bids or self.ref.asks))
    @rule(data=st.data())
    def touch_existing_levels(self, data: st.DataObject) -> None:
        sides: list[list[Raw]] = []
        for side in (self.ref.bids, self.ref.asks):
            chosen = data.draw(st.lists(st.sampled_from(sorted(side)), max_size=4)) if side else []
            sides.append([(data.draw(_spellings(int(p * 4))), *data.draw(_sizes)) for p in chosen])
        assert self.ref.last_u is not None
        self._delta(self.ref.last_u + 1, sides[0], sides[1])

    @precondition(lambda self: self.ref.last_u is not None)
    @rule(back=st.integers(0, 5), bids=_delta_bids)
    def duplicate_delta(self, back: int, bids: list[Raw]) -> None:
        assert self.ref.last_u is not None
        self._delta(self.ref.last_u - back, bids, [])

    @precondition(lambda self: self.ref.last_u is not None)
    @rule(ahead=st.integers(2, 1000), bids=_delta_bids)
    def gap_delta(self, ahead: int, bids: list[Raw]) -> None:
        assert self.ref.last_u is not None
        self._delta(self.ref.last_u + ahead, bids, [])

    @rule()
    def invalidate(self) -> None:
        self.book.invalidate()
        self.ref.invalidate()

    @invariant()
    def same_state(self) -> None:
        assert self.book.live == self.ref.live
        assert self.book.last_u == self.ref.last_u
        for n in (1, 2, 25, 1000):
            assert self.book.top_bids(n) == self.ref.top(self.ref.bids, n, bids=True)
            assert self.book.top_asks(n) == self.ref.top(self.ref.asks, n, bids=False)
            bids_json, asks_json = self.book.top_json(n)
            assert orjson.loads(f"[{bids_json}]") == [
                list(x) for x in self.ref.top(self.ref.bids, n, bids=True)
            ]
            assert orjson.loads(f"[{asks_json}]") == [
                list(x) for x in self.ref.top(self.ref.asks, n, bids=False)
            ]
        assert self.book.best_json() == tuple(side or None for side in self.book.top_json(1))
        bid_texts, ask_texts = self.book.level_texts()  # BookTemplate.render_texts reads them
        for n in (1, 25, 1000):
            assert self.book.top_json(n) == (",".join(bid_texts[:n]), ",".join(ask_texts[:n]))


# 100 examples of 40 steps, as the ordinary book's state machine (tests/core/test_book.py).
RpiBookMachine.TestCase.settings = settings(
    max_examples=examples(100),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_rpi_book_state_machine = RpiBookMachine.TestCase

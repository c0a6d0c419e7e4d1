"""mdgw.core.full_book: Bybit's full-book sync (REST snapshot + buffered deltas), one rule at a
time, then a state machine that drives it with a true book and checks every live state
against the truth at its ``u``."""

from __future__ import annotations

import random

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mdgw.core.book import BookOutcome
from mdgw.core.bybit import BookFrame, Level, decode_frame, full_snapshot_frame
from mdgw.core.bybit_spec import FULL_DEPTH
from mdgw.core.full_book import FullBook
from mdgw.testing.examples import examples

Side = dict[int, int]  # tick -> size


def levels(side: dict[int, int]) -> list[Level]:
    return [(t / 4, str(t / 4), str(s), float(s)) for t, s in side.items()]


def frame(u: int, seq: int, bids: Side, asks: Side, *, snapshot: bool = False) -> BookFrame:
    return BookFrame(
        "orderbook.full.X", "X", FULL_DEPTH, snapshot, u, seq, 1, 1, levels(bids), levels(asks)
    )


def test_rest_answer_becomes_a_snapshot_frame() -> None:
    body = (
        b'{"retCode":0,"retMsg":"OK","result":{"s":"BTCUSDT","a":[["63000.1","1"]],'
        b'"b":[["62999.9","2"]],"ts":5,"u":439925,"seq":2164890076,"cts":4},"time":6}'
    )
    decoded = decode_frame(full_snapshot_frame("BTCUSDT", body))
    assert isinstance(decoded, BookFrame)
    assert (decoded.snapshot, decoded.u, decoded.seq, decoded.depth) == (
        True,
        439925,
        2164890076,
        FULL_DEPTH,
    )


def test_snapshot_matching_a_buffered_delta_syncs_and_applies_the_rest() -> None:
    book = FullBook()
    assert book.apply(frame(10, 100, {1: 1}, {})) is BookOutcome.NOT_SYNCED
    assert book.apply(frame(11, 105, {2: 1}, {})) is BookOutcome.NOT_SYNCED
    assert book.apply(frame(12, 107, {3: 1}, {})) is BookOutcome.NOT_SYNCED
    # The snapshot includes delta u=11 (seq 105): 10 is dropped, 12 applied on top.
    snap = frame(11, 105, {1: 1, 2: 1}, {50: 1}, snapshot=True)
    assert book.apply(snap) is BookOutcome.RESET
    assert book.live and book.last_u == 12 and book.buffered == 0
    assert [p for p, _ in book.top_bids(5)] == ["0.75", "0.5", "0.25"]


def test_too_old_or_mismatched_snapshots_are_refused() -> None:
    book = FullBook()
    book.apply(frame(10, 100, {1: 1}, {}))
    assert book.apply(frame(9, 90, {}, {}, snapshot=True)) is BookOutcome.NOT_SYNCED  # seq < first
    assert book.wants_snapshot
    assert book.apply(frame(7, 100, {}, {}, snapshot=True)) is BookOutcome.NOT_SYNCED  # u differs
    assert book.apply(frame(10, 100, {1: 1}, {}, snapshot=True)) is BookOutcome.RESET


def test_hole_in_the_buffer_restarts_buffering_and_seq_going_down_is_dropped() -> None:
    book = FullBook()
    book.apply(frame(10, 100, {}, {}))
    book.apply(frame(12, 110, {}, {}))  # hole: buffer restarts at 12
    book.apply(frame(13, 109, {}, {}))  # seq went down: dropped
    assert book.buffered == 1
    assert book.apply(frame(11, 105, {}, {}, snapshot=True)) is BookOutcome.NOT_SYNCED  # too old
    assert book.apply(frame(12, 110, {}, {}, snapshot=True)) is BookOutcome.RESET
    assert book.last_u == 12


def test_live_book_gap_and_u1_restart_the_sync() -> None:
    book = FullBook()
    book.apply(frame(10, 100, {1: 1}, {50: 1}, snapshot=True))
    assert book.apply(frame(11, 101, {2: 1}, {})) is BookOutcome.APPLIED
    assert book.apply(frame(11, 101, {2: 1}, {})) is BookOutcome.DUPLICATE
    assert book.apply(frame(13, 103, {}, {})) is BookOutcome.GAP
    assert not book.live and book.buffered == 1 and book.wants_snapshot
    book.apply(frame(13, 103, {1: 1}, {50: 1}, snapshot=True))
    assert book.apply(frame(1, 104, {}, {})) is BookOutcome.GAP  # u = 1: Bybit re-initialised
    assert not book.live and book.buffered == 1


def test_quiet_market_snapshot_goes_live_alone() -> None:
    book = FullBook()
    assert book.apply(frame(10, 100, {1: 1}, {50: 1}, snapshot=True)) is BookOutcome.RESET
    assert book.apply(frame(11, 101, {}, {})) is BookOutcome.APPLIED


class FullBookMachine(RuleBasedStateMachine):
    """A true book changes by deltas; the machine delivers, drops, repeats and resets them,
    and hands over snapshots of the truth at various u. Whenever the FullBook is live its
    book must be the truth at its u."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(0)
        self.book = FullBook()
        self.bids: Side = {t: 1 for t in range(1, 30, 3)}
        self.asks: Side = {t: 1 for t in range(41, 70, 3)}
        self.session = 0
        self.u = 100
        self.seq = 1000
        self.history: dict[tuple[int, int], tuple[int, Side, Side]] = {
            (0, 100): (self.seq, dict(self.bids), dict(self.asks))
        }
        self.sent: list[BookFrame] = []

    def _next(self, changes: list[tuple[bool, int, int]], *, reset: bool = False) -> BookFrame:
        if reset:
            self.session += 1
            self.u = 0
        self.u += 1
        self.seq += self.rng.randint(1, 5)
        db: Side = {}
        da: Side = {}
        for bid, tick, size in changes:
            side, delta = (self.bids, db) if bid else (self.asks, da)
            if size:
                side[tick] = size
            else:
                side.pop(tick, None)
            delta[tick] = size
        self.history[(self.session, self.u)] = (self.seq, dict(self.bids), dict(self.asks))
        out = frame(self.u, self.seq, db, da)
        self.sent.append(out)
        return out

    _changes = st.lists(
        st.one_of(
            st.tuples(st.just(True), st.integers(1, 40), st.integers(0, 3)),
            st.tuples(st.just(False), st.integers(41, 80), st.integers(0, 3)),
        ),
        max_size=4,
    )

    @rule(changes=_changes)
    def deliver(self, changes: list[tuple[bool, int, int]]) -> None:
        self.book.apply(self._next(changes))

    @rule(changes=_changes)
    def lose(self, changes: list[tuple[bool, int, int]]) -> None:
        self._next(changes)

    @precondition(lambda self: bool(self.sent))
    @rule(back=st.integers(1, 5))
    def repeat(self, back: int) -> None:
        self.book.apply(self.sent[-min(back, len(self.sent))])

    @rule(changes=_changes)
    def bybit_restart(self, changes: list[tuple[bool, int, int]]) -> None:
        self.book.apply(self._next(changes, reset=True))

    @rule(back=st.integers(0, 4))
    def snapshot(self, back: int) -> None:
        u = max(1, self.u - back)
        key = (self.session, u)
        if key not in self.history:
            return
        seq, bids, asks = self.history[key]
        outcome = self.book.apply(frame(u, seq, bids, asks, snapshot=True))
        assert outcome in (BookOutcome.RESET, BookOutcome.NOT_SYNCED, BookOutcome.CROSSED)

    @rule()
    def fresh_snapshot_after_contiguous_deltas_syncs(self) -> None:
        # Buffer one delivered delta, then the snapshot at it: always syncs.
        self.book.apply(self._next([]))
        seq, bids, asks = self.history[(self.session, self.u)]
        assert (
            self.book.apply(frame(self.u, seq, bids, asks, snapshot=True))
            in (
                BookOutcome.RESET,
                BookOutcome.NOT_SYNCED,  # already live: a snapshot is only used while syncing
            )
            or self.book.live
        )

    @invariant()
    def live_book_is_the_truth_at_its_u(self) -> None:
        if not self.book.live:
            return
        u = self.book.last_u
        assert u is not None
        truth = self.history.get((self.session, u))
        assert truth is not None, f"live at u={u} which this session never had"
        _, bids, asks = truth
        want_bids = [(str(t / 4), str(s)) for t, s in sorted(bids.items(), reverse=True)]
        want_asks = [(str(t / 4), str(s)) for t, s in sorted(asks.items())]
        assert self.book.top_bids(100) == want_bids
        assert self.book.top_asks(100) == want_asks
        bid_texts, ask_texts = self.book.level_texts()  # BookTemplate.render_texts reads them
        assert [orjson.loads(t) for t in bid_texts] == [list(level) for level in want_bids]
        assert [orjson.loads(t) for t in ask_texts] == [list(level) for level in want_asks]


FullBookMachine.TestCase.settings = settings(
    max_examples=examples(60),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_full_book_state_machine = FullBookMachine.TestCase

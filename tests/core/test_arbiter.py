"""mdgw.core.arbiter: one rule per test, then many sources against a naive truth.

The property test drives a real :class:`~mdgw.core.hub.Hub` with real envelopes: several
sources deliver interleaved copies of one ``u`` sequence, with skipped deltas, lost frames
(envelope holes), reconnects, stalls (a source picked rarely) and late older snapshots. Every
published book must equal the truth at its ``u``, the published ``u`` never goes back, and
while one source delivers everything the book never resyncs and ends at the last ``u``.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import wire
from mdgw.core.arbiter import MAX_HELD, Arbiter, Source, SourceStats, Verdict
from mdgw.core.bybit import BookFrame
from mdgw.core.hub import HOLD_GRACE, Hub
from mdgw.core.wire import EnvelopeKind
from mdgw.testing import oracles
from mdgw.testing.examples import examples

CAT = wire.category_code("linear")
TOPIC = "orderbook.50.BTCUSDT"


def frame(u: int, *, snapshot: bool = False, ts: int | None = None) -> BookFrame:
    return BookFrame(
        TOPIC, "BTCUSDT", 50, snapshot, u, 0, 1000 + u if ts is None else ts, 0, [], []
    )


def source(name: str = "a", conn_id: int = 1) -> Source:
    return Source("ing", conn_id, name, SourceStats())


# --- rules ------------------------------------------------------------------------------------


def test_first_delivery_applies_and_later_copies_are_duplicates_with_their_lag() -> None:
    arb = Arbiter(("linear", TOPIC))
    a, b = source("a", 1), source("b", 2)
    assert arb.offer(a, frame(10, snapshot=True), 1_000, 0.0) is Verdict.APPLY
    assert arb.offer(b, frame(10, snapshot=True), 3_000, 0.0) is Verdict.DUPLICATE
    assert arb.offer(b, frame(11), 5_000, 0.0) is Verdict.APPLY
    assert arb.offer(a, frame(11), 9_000, 0.0) is Verdict.DUPLICATE
    assert (a.stats.first, a.stats.late, a.stats.lag_ns_total) == (1, 1, 4_000)
    assert (b.stats.first, b.stats.late, b.stats.lag_ns_total) == (1, 1, 2_000)
    assert a.stats.gaps == b.stats.gaps == 0


def test_a_skipped_u_is_held_until_another_source_fills_it() -> None:
    events: list[tuple[str, dict[str, object]]] = []
    arb = Arbiter(("linear", TOPIC), events)
    a, b = source("a", 1), source("b", 2)
    arb.offer(a, frame(10, snapshot=True), 0, 0.0)
    arb.offer(b, frame(10, snapshot=True), 0, 0.0)
    assert arb.offer(a, frame(12), 0, 1.0) is Verdict.HELD  # a skipped 11
    assert a.stats.gaps == 1 and len(arb.held) == 1 and arb.held_since == 1.0
    assert [(name, f["source"], f["expected"], f["got"]) for name, f in events] == [
        ("source_gap", "a", 11, 12)
    ]
    assert arb.offer(a, frame(13), 0, 1.1) is Verdict.HELD
    assert arb.offer(b, frame(11), 0, 1.2) is Verdict.APPLY
    assert [f.u for f, _ in iter(arb.next_held, None)] == [12, 13]
    assert not arb.held and arb.held_since is None and arb.last_u == 13
    assert arb.offer(b, frame(12), 0, 1.3) is Verdict.DUPLICATE


def test_a_gap_no_source_can_fill_is_a_gap() -> None:
    arb = Arbiter(("linear", TOPIC))
    a, b = source("a", 1), source("b", 2)
    arb.offer(a, frame(10, snapshot=True), 0, 0.0)
    assert arb.offer(a, frame(12), 0, 0.0) is Verdict.GAP  # the only source
    arb.desync()
    arb.offer(a, frame(20, snapshot=True), 0, 0.0)
    arb.offer(b, frame(20, snapshot=True), 0, 0.0)
    assert arb.offer(a, frame(22), 0, 0.0) is Verdict.HELD
    assert arb.offer(b, frame(22), 0, 0.0) is Verdict.GAP  # b skipped 21 as well
    b2 = source("c", 3)
    arb.remove(b)
    arb.desync()
    arb.offer(a, frame(30, snapshot=True), 0, 0.0)
    arb.offer(b2, frame(30, snapshot=True), 0, 0.0)
    arb.mark_lost(b2)  # b2 lost frames somewhere: it cannot fill 31
    assert arb.offer(a, frame(32), 0, 0.0) is Verdict.GAP


def test_gone_sources_cannot_continue_and_the_hold_is_bounded() -> None:
    arb = Arbiter(("linear", TOPIC))
    a, b = source("a", 1), source("b", 2)
    arb.offer(a, frame(10, snapshot=True), 0, 0.0)
    arb.offer(b, frame(10, snapshot=True), 0, 0.0)
    for u in range(12, 12 + MAX_HELD):
        assert arb.offer(a, frame(u), 0, 0.0) is Verdict.HELD
    assert arb.offer(a, frame(12 + MAX_HELD), 0, 0.0) is Verdict.GAP
    assert arb.can_continue()
    b.alive = False
    assert not arb.can_continue()
    b.alive = True
    arb.remove(b)
    assert not arb.can_continue() and arb.sources() == [a]


def test_snapshots_never_roll_the_book_back() -> None:
    arb = Arbiter(("linear", TOPIC))
    a, b = source("a", 1), source("b", 2)
    arb.offer(a, frame(10, snapshot=True), 0, 0.0)
    arb.offer(a, frame(11), 0, 0.0)
    assert arb.offer(b, frame(9, snapshot=True), 0, 0.0) is Verdict.OLDER
    assert b.stats.older_snapshots == 1
    assert arb.offer(b, frame(10), 0, 0.0) is Verdict.DUPLICATE  # b goes on from its snapshot
    assert arb.offer(b, frame(11, snapshot=True, ts=5), 0, 0.0) is Verdict.APPLY  # same u, new
    assert arb.offer(a, frame(11, snapshot=True, ts=5), 0, 0.0) is Verdict.DUPLICATE  # a copy
    assert arb.offer(a, frame(15, snapshot=True), 0, 0.0) is Verdict.APPLY
    arb.desync()  # resyncing: the floor stays
    assert arb.offer(b, frame(14, snapshot=True), 0, 0.0) is Verdict.OLDER
    assert arb.offer(b, frame(1, snapshot=True), 0, 0.0) is Verdict.OLDER  # ts before the book
    assert arb.offer(b, frame(1, snapshot=True, ts=5000), 0, 0.0) is Verdict.APPLY  # restart
    arb.offer(b, frame(2, ts=5001), 0, 0.0)
    assert arb.offer(a, frame(1, snapshot=True, ts=5000), 0, 0.0) is Verdict.OLDER  # late copy
    assert arb.offer(a, frame(1, snapshot=True, ts=6000), 0, 0.0) is Verdict.APPLY  # another
    arb.desync()
    arb.forget_floor()
    assert arb.offer(b, frame(3, snapshot=True, ts=9), 0, 0.0) is Verdict.APPLY


def test_delta_before_any_snapshot_is_not_synced() -> None:
    arb = Arbiter(("linear", TOPIC))
    assert arb.offer(source(), frame(5), 0, 0.0) is Verdict.NOT_SYNCED
    assert not arb.can_continue()


# --- many sources against the truth ------------------------------------------------------------


def truth_sequence(rng: random.Random, steps: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Books at u = 1..steps: bids below 100, asks above (never crossed)."""
    bids = {f"{90 + i}": "1" for i in range(5)}
    asks = {f"{101 + i}": "1" for i in range(5)}
    books = [(dict(bids), dict(asks))]
    for _ in range(steps - 1):
        for side, base in ((bids, 90), (asks, 101)):
            for _ in range(rng.randint(1, 3)):
                price = f"{base + rng.randint(0, 9)}"
                if price in side and rng.random() < 0.4:
                    del side[price]
                else:
                    side[price] = str(rng.randint(1, 9))
        books.append((dict(bids), dict(asks)))
    return books


def levels(side: dict[str, str], *, bids: bool) -> list[list[str]]:
    return [[p, side[p]] for p in sorted(side, key=float, reverse=bids)]


def diff(old: dict[str, str], new: dict[str, str]) -> list[list[str]]:
    out = [[p, s] for p, s in new.items() if old.get(p) != s]
    return out + [[p, "0"] for p in old if p not in new]


def encode(u: int, books: list[tuple[dict[str, str], dict[str, str]]], *, snapshot: bool) -> bytes:
    bids, asks = books[u - 1]
    if snapshot:
        b, a = levels(bids, bids=True), levels(asks, bids=False)
    else:
        ob, oa = books[u - 2]
        b, a = diff(ob, bids), diff(oa, asks)
    return orjson.dumps(
        {
            "topic": TOPIC,
            "type": "snapshot" if snapshot else "delta",
            "ts": 1000 + u,
            "data": {"s": "BTCUSDT", "b": b, "a": a, "u": u, "seq": u},
            "cts": 1000 + u,
        }
    )


class Feed:
    """One source's connection: envelopes with its own sequence."""

    def __init__(
        self, hub: Hub, ingestor: bytes, conn_id: int, clock: list[float] | None = None
    ) -> None:
        self.hub, self.ingestor, self.conn_id, self.seq = hub, ingestor, conn_id, 0
        self.clock = [0.0] if clock is None else clock  # the hub's now, shared by the feeds

    def envelope(self, kind: EnvelopeKind, payload: bytes = b"", *, lose: bool = False) -> None:
        if kind is EnvelopeKind.DATA:
            self.seq += 1
            if lose:
                return  # lost between ingestor and builder: the next one shows the hole
        msg = oracles.encode_raw(
            kind,
            ingestor=self.ingestor,
            category=CAT,
            conn_id=self.conn_id,
            seq=self.seq,
            recv_ns=self.seq,
            frame=payload,
        )
        self.hub.on_raw(msg, self.clock[0])


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_sources = draw(st.integers(2, 3))
    faults = []
    for index in range(n_sources):
        perfect = index == 0 and draw(st.booleans())
        faults.append(
            {
                "perfect": perfect,
                "start": 1 if index == 0 else draw(st.integers(1, 10)),
                "skip": 0.0 if perfect else draw(st.sampled_from([0.0, 0.05, 0.2])),
                "lose": 0.0 if perfect else draw(st.sampled_from([0.0, 0.05])),
                "reconnect": 0.0 if perfect else draw(st.sampled_from([0.0, 0.03])),
                "weight": draw(st.sampled_from([1, 3, 10])),  # 1 against 10: a stalled source
            }
        )
    return {
        "steps": draw(st.integers(5, 80)),
        "sources": faults,
        "older": draw(st.integers(0, 3)),  # late snapshots of an older u, each on its own conn
        "seed": draw(st.integers(0, 2**32 - 1)),
        # books.max_rate: 0 publishes every frame; 100 conflates (an envelope every ms)
        "max_rate": draw(st.sampled_from([0.0, 100.0])),
    }


@settings(max_examples=examples(300), deadline=None)
@given(scenarios())
def test_many_sources_publish_only_the_truth_and_never_go_back(scenario: dict[str, Any]) -> None:
    rng = random.Random(scenario["seed"])
    steps = scenario["steps"]
    books = truth_sequence(rng, steps)
    clock = itertools.count(1)
    hub = Hub(
        publish_depth=25,
        resync_timeout=5.0,
        resync_min_interval=1.0,
        ingestor_timeout=3.0,
        stale_after=60.0,
        clock_ns=lambda: next(clock),
        max_rate=scenario["max_rate"],
    )
    now = [0.0]
    conn_ids = itertools.count(1)
    # Each source: (faults, feed, next u to send, whether it still has to send a snapshot)
    state: list[dict[str, Any]] = []
    for index, faults in enumerate(scenario["sources"]):
        feed = Feed(hub, f"ing{index}".encode(), next(conn_ids), now)
        feed.envelope(EnvelopeKind.CONN_UP, b"linear#0")
        state.append({"f": faults, "feed": feed, "u": faults["start"], "snap": True})
    older = scenario["older"]
    published: list[int] = []
    if scenario["sources"][0]["perfect"]:
        # The builder must know the perfect source carries the topic before another source
        # fails (it cannot wait for a source it has never heard of): its snapshot comes first.
        first = state[0]
        first["feed"].envelope(EnvelopeKind.DATA, encode(1, books, snapshot=True))
        first["snap"], first["u"] = False, 2

    def collect() -> None:
        now[0] += 0.001
        hub.publish_due(now[0])  # conflation: what the builder does after each batch
        for _topic, payload in hub.outbox:
            msg = orjson.loads(payload)
            if msg["channel"] != "book":
                continue
            u = msg["u"]
            bids, asks = books[u - 1]
            assert msg["bids"] == levels(bids, bids=True)[:25], f"book at u={u}"
            assert msg["asks"] == levels(asks, bids=False)[:25], f"book at u={u}"
            assert not published or u >= published[-1], f"rolled back {published[-1]} -> {u}"
            published.append(u)
        hub.outbox.clear()

    while True:
        active = [s for s in state if s["u"] <= steps]
        if not active:
            break
        s = rng.choices(active, weights=[a["f"]["weight"] for a in active])[0]
        f, feed, u = s["f"], s["feed"], s["u"]
        if older and published and rng.random() < 0.05:
            older -= 1  # a lagging source's snapshot of an older u, on a connection of its own
            late = Feed(hub, b"late", next(conn_ids), now)
            late.envelope(EnvelopeKind.CONN_UP, b"late")
            late.envelope(
                EnvelopeKind.DATA, encode(max(1, published[-1] - 2), books, snapshot=True)
            )
            late.envelope(EnvelopeKind.CONN_DOWN)
            continue
        if s["snap"]:
            feed.envelope(EnvelopeKind.DATA, encode(u, books, snapshot=True))
            s["snap"] = False
        elif rng.random() < f["reconnect"]:
            feed.envelope(EnvelopeKind.CONN_DOWN)
            s["feed"] = Feed(hub, feed.ingestor, next(conn_ids), now)
            s["feed"].envelope(EnvelopeKind.CONN_UP, b"linear#0")
            s["snap"] = True
            continue  # its snapshot is of the then current u
        else:
            r = rng.random()
            if r < f["skip"]:
                pass  # never sent: only the u shows it
            else:
                feed.envelope(
                    EnvelopeKind.DATA, encode(u, books, snapshot=False), lose=r > 1 - f["lose"]
                )
        s["u"] += 1
        collect()
    now[0] += 1.0  # past any pending publish
    collect()
    stats = hub.stats
    assert stats.crossed == 0 and stats.malformed == 0
    if scenario["sources"][0]["perfect"]:
        # One source delivered every u: nothing else may cost a resync, and the book ends
        # at the last u.
        assert stats.resyncs == 0, hub.events
        assert published[-1] == steps
        # Nothing is held past the grace either (and no ingestor is silent for long yet).
        hub.tick(now[0] + HOLD_GRACE + 0.1)
        assert stats.resyncs == 0
    firsts = sum(s.first for s in hub.source_stats().values())
    if scenario["max_rate"]:
        assert stats.books_out <= firsts  # conflated: at most one book per first delivery
    else:
        assert firsts == stats.books_out  # every published book came from one first delivery

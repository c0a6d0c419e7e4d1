"""mdgw.core.hub: the book builder's rules, driven with real envelopes and frames."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import wire
from mdgw.core.hub import Hub
from mdgw.core.wire import EnvelopeKind
from mdgw.testing import oracles
from mdgw.testing.examples import examples

CAT = wire.category_code("linear")


def book_frame(
    u: int,
    bids: list[list[str]],
    asks: list[list[str]],
    *,
    snapshot: bool,
    symbol: str = "BTCUSDT",
    depth: int = 50,
) -> bytes:
    return orjson.dumps(
        {
            "topic": f"orderbook.{depth}.{symbol}",
            "type": "snapshot" if snapshot else "delta",
            "ts": 1000 + u,
            "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": 10 * u},
            "cts": 999 + u,
        }
    )


def trade_frame(*ids: str, symbol: str = "BTCUSDT") -> bytes:
    return orjson.dumps(
        {
            "topic": f"publicTrade.{symbol}",
            "type": "snapshot",
            "ts": 5,
            "data": [
                {"T": 4, "s": symbol, "S": "Buy", "v": "0.1", "p": "100.5", "i": i, "BT": False}
                for i in ids
            ],
        }
    )


class Feed:
    """One ingestor connection feeding a hub, with its own envelope sequence."""

    def __init__(self, hub: Hub, conn_id: int = 1, ingestor: bytes = b"ing") -> None:
        self.hub, self.conn_id, self.ingestor, self.seq = hub, conn_id, ingestor, 0
        self.now = 0.0

    def send(self, frame: bytes, *, skip: int = 0) -> None:
        self.seq += 1 + skip
        self.hub.on_raw(
            oracles.encode_raw(
                EnvelopeKind.DATA,
                ingestor=self.ingestor,
                category=CAT,
                conn_id=self.conn_id,
                seq=self.seq,
                recv_ns=123,
                frame=frame,
            ),
            self.now,
        )

    def event(self, kind: EnvelopeKind) -> None:
        self.hub.on_raw(
            oracles.encode_raw(
                kind,
                ingestor=self.ingestor,
                category=CAT,
                conn_id=self.conn_id,
                seq=self.seq,
                recv_ns=1,
            ),
            self.now,
        )


def make_hub(**overrides: Any) -> Hub:
    clock = itertools.count(10_000)
    params: dict[str, Any] = {
        "publish_depth": 25,
        "resync_timeout": 5.0,
        "resync_min_interval": 1.0,
        "ingestor_timeout": 3.0,
        "stale_after": 60.0,
        "clock_ns": lambda: next(clock),
    }
    params.update(overrides)
    return Hub(**params)


def drain(hub: Hub) -> list[tuple[str, dict[str, Any]]]:
    out = [(t.decode(), orjson.loads(p)) for t, p in hub.outbox]
    hub.outbox.clear()
    return out


def channels(out: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{p['channel']}:{p.get('state', p.get('u', ''))}" for _, p in out]


SNAP = book_frame(100, [["99", "1"], ["98", "2"]], [["101", "1"], ["102", "3"]], snapshot=True)


def test_snapshot_goes_live_and_publishes_book_and_bbo() -> None:
    hub = make_hub()
    Feed(hub).send(SNAP)
    out = drain(hub)
    assert channels(out) == ["status:live", "book:100", "bbo:100"]
    topic, book = out[1]
    assert topic == "book.linear.BTCUSDT."
    assert book["bids"] == [["99", "1"], ["98", "2"]]
    assert book["asks"] == [["101", "1"], ["102", "3"]]
    assert (book["seq"], book["u"], book["ts"], book["cts"], book["depth"]) == (
        1,
        100,
        1100,
        1099,
        25,
    )
    assert book["recv_ns"] == 123 and book["pub_ns"] >= 10_000
    assert out[2][1] | {} == out[2][1]
    assert (out[2][1]["bid"], out[2][1]["ask_size"]) == ("99", "1")


def test_delta_publishes_book_and_bbo_only_when_best_changes() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(SNAP)
    drain(hub)
    feed.send(book_frame(101, [["98", "0"]], [], snapshot=False))
    out = drain(hub)
    assert channels(out) == ["book:101"]
    assert out[0][1]["bids"] == [["99", "1"]] and out[0][1]["seq"] == 2
    feed.send(book_frame(102, [["99.5", "4"]], [], snapshot=False))
    out = drain(hub)
    assert channels(out) == ["book:102", "bbo:102"]
    assert out[1][1]["seq"] == 2 and out[1][1]["bid"] == "99.5"


def test_gap_stops_publishing_and_asks_for_resync_once() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(SNAP)
    drain(hub)
    feed.send(book_frame(105, [["98", "0"]], [], snapshot=False))
    out = drain(hub)
    assert channels(out) == ["status:resyncing"]
    assert "gap" in out[0][1]["reason"]
    assert [wire.decode_resync(m) for m in hub.control] == [
        wire.ResyncRequest(
            "linear", "orderbook.50.BTCUSDT", out[0][1]["reason"], ingestor="ing", conn_id=1
        )
    ]
    hub.control.clear()
    for u in (106, 107):
        feed.send(book_frame(u, [["97", "1"]], [], snapshot=False))
    assert drain(hub) == [] and hub.control == []
    hub.tick(4.9)
    assert hub.control == []
    hub.tick(5.0)  # no snapshot within resync_timeout: ask again
    assert [wire.decode_resync(m).reconnect for m in hub.control] == [False]
    hub.control.clear()
    hub.tick(10.0)  # resubscribing twice did not help: ask for a new connection
    assert [wire.decode_resync(m).reconnect for m in hub.control] == [True]
    restart = book_frame(1, [["50", "1"]], [["51", "1"]], snapshot=True)
    feed.send(restart.replace(b'"ts":1001', b'"ts":9001'))  # Bybit restart: u = 1, newer ts
    out = drain(hub)
    assert channels(out) == ["status:live", "book:1", "bbo:1"]
    assert out[1][1]["seq"] == 2  # never reset while the builder runs


def test_crossed_delta_resyncs() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(SNAP)
    drain(hub)
    feed.send(book_frame(101, [["101", "5"]], [], snapshot=False))
    out = drain(hub)
    assert channels(out) == ["status:resyncing"] and "crossed" in out[0][1]["reason"]
    assert len(hub.control) == 1


def test_delta_before_snapshot_and_duplicates() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(book_frame(100, [["99", "1"]], [], snapshot=False))
    assert channels(drain(hub)) == ["status:resyncing"]
    assert len(hub.control) == 1
    feed.send(SNAP)
    assert channels(drain(hub)) == ["status:live", "book:100", "bbo:100"]
    feed.send(book_frame(100, [["99", "7"]], [], snapshot=False))
    assert drain(hub) == [] and hub.stats.duplicates == 1


def test_level1_same_u_resend_is_published_not_a_gap() -> None:
    hub = make_hub()
    feed = Feed(hub)
    snap = book_frame(7, [["99", "1"]], [["101", "1"]], snapshot=True, depth=1)
    feed.send(snap)
    feed.send(snap.replace(b'"ts":1007', b'"ts":4007'))  # Bybit's re-push: same u, new ts
    out = drain(hub)
    assert channels(out) == ["status:live", "book:7", "bbo:7", "book:7"]
    assert out[-1][1]["depth"] == 1
    feed.send(snap.replace(b'"ts":1007', b'"ts":4007'))  # the same message again: a copy
    assert drain(hub) == [] and hub.stats.duplicates == 1


def test_malformed_frame_resyncs_only_its_topic() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(SNAP)
    feed.send(book_frame(5, [["1", "1"]], [["2", "1"]], snapshot=True, symbol="ETHUSDT"))
    drain(hub)
    feed.send(b'{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"s":')
    out = drain(hub)
    assert [(t, p["state"]) for t, p in out] == [("status.linear.BTCUSDT.", "resyncing")]
    assert hub.stats.malformed == 1
    assert [wire.decode_resync(m).topic for m in hub.control] == ["orderbook.50.BTCUSDT"]
    feed.send(book_frame(6, [["1", "2"]], [], snapshot=False, symbol="ETHUSDT"))
    assert channels(drain(hub)) == ["book:6", "bbo:6"]  # best bid size changed


def test_unsupported_topics_are_counted_not_resynced() -> None:
    hub = make_hub()
    Feed(hub).send(b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{}}')
    assert hub.stats.unsupported == 1 and drain(hub) == [] and hub.control == []


def test_sequence_hole_resyncs_the_books_of_that_connection() -> None:
    hub = make_hub()
    a, b = Feed(hub, conn_id=1), Feed(hub, conn_id=2)
    a.send(SNAP)
    b.send(book_frame(5, [["1", "1"]], [["2", "1"]], snapshot=True, symbol="ETHUSDT"))
    drain(hub)
    a.send(book_frame(101, [["98", "0"]], [], snapshot=False), skip=1)
    out = drain(hub)
    assert [(t, p["state"]) for t, p in out] == [("status.linear.BTCUSDT.", "resyncing")]
    assert hub.stats.seq_holes == 1 and hub.stats.frames_lost == 1


def test_each_data_envelope_goes_to_its_connections_live_source() -> None:
    """The hub remembers the source of the last DATA envelope (on_raw): never one that
    closed, reopened, went silent or was dropped, and never another connection's."""
    hub = make_hub()
    a, b = Feed(hub, conn_id=1), Feed(hub, conn_id=2)
    other = Feed(hub, conn_id=1, ingestor=b"other")  # same conn_id, another ingestor

    def source_of(feed: Feed) -> Any:
        src = hub._conns[(feed.ingestor.decode(), feed.conn_id)]
        assert src.alive and src.seq == feed.seq
        return src

    a.send(SNAP)
    b.send(SNAP)
    other.send(SNAP)
    a.send(SNAP)
    assert [source_of(f).name for f in (a, b, other)] == ["ing/0x1", "ing/0x2", "other/0x1"]
    assert hub.stats.seq_holes == 0
    first = source_of(a)
    a.event(EnvelopeKind.CONN_UP)  # reopened: a new source, its seq from 0
    assert not first.alive
    a.seq = 2
    a.send(SNAP)  # seq 3 on the new source: a hole (the old one had 2: none)
    assert hub.stats.seq_holes == 1 and source_of(a) is not first
    a.event(EnvelopeKind.CONN_DOWN)
    a.send(SNAP)  # after the close: a source made for it, no hole
    assert hub.stats.seq_holes == 1 and source_of(a).name == "ing/0x1"
    hub.on_inputs_lost("journal hole", 0.0)
    a.send(SNAP)
    assert hub.stats.seq_holes == 1 and source_of(a).alive
    a.send(SNAP, skip=2)
    assert hub.stats.seq_holes == 2 and hub.stats.frames_lost == 2 + 2
    a.now = b.now = other.now = 1.0
    b.send(SNAP)  # keeps ing alive; other goes silent
    hub.tick(3.5)
    assert ("other", 1) not in hub._conns and hub.stats.ingestors_lost == 1
    other.send(SNAP)  # a new source again, no hole
    assert source_of(other).name == "other/0x1" and hub.stats.seq_holes == 2


def test_delta_from_another_connection_continues_the_book() -> None:
    # Bybit's u is per topic, the same on every connection: u = last_u + 1 from any
    # source is the next delta.
    hub = make_hub()
    old, new = Feed(hub, conn_id=1), Feed(hub, conn_id=2)
    old.send(SNAP)
    drain(hub)
    new.send(book_frame(101, [["98", "0"]], [], snapshot=False))
    assert channels(drain(hub)) == ["book:101"]
    old.send(book_frame(101, [["98", "0"]], [], snapshot=False))
    assert drain(hub) == [] and hub.stats.duplicates == 1
    new.send(book_frame(200, [["99", "1"]], [["100", "1"]], snapshot=True))
    assert channels(drain(hub)) == ["book:200", "bbo:200"]
    old.send(book_frame(150, [["99", "1"]], [["100", "1"]], snapshot=True))  # older
    assert drain(hub) == [] and hub.stats.older_snapshots == 1


def test_connection_down_and_silent_ingestor() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(SNAP)
    drain(hub)
    feed.event(EnvelopeKind.CONN_DOWN)
    out = drain(hub)
    assert [p["reason"] for _, p in out] == ["connection closed"]
    assert hub.control == []  # the ingestor resubscribes by itself
    hub.tick(5.0)
    assert len(hub.control) == 1  # ... or is asked after resync_timeout
    hub.control.clear()
    feed.conn_id, feed.seq = 2, 0
    feed.send(SNAP)
    assert channels(drain(hub)) == ["status:live", "book:100", "bbo:100"]
    hub.tick(3.5)  # no heartbeat or frame for more than ingestor_timeout
    out = drain(hub)
    assert [(p["state"], p["reason"]) for _, p in out] == [("resyncing", "ingestor silent")]
    assert hub.snapshot(b"") == []


def test_stale_book_is_not_served_and_comes_back() -> None:
    hub = make_hub(stale_after=10.0, ingestor_timeout=1e9)
    feed = Feed(hub)
    feed.send(SNAP)
    drain(hub)
    hub.tick(11.0)
    assert [p["state"] for _, p in drain(hub)] == ["stale"]
    assert hub.snapshot(b"book.") == []
    feed.now = 12.0
    feed.send(book_frame(101, [["97", "1"]], [], snapshot=False))
    assert channels(drain(hub)) == ["status:live", "book:101"]  # best unchanged: no bbo
    assert {t for t, _ in hub.snapshot(b"")} == {b"book.linear.BTCUSDT.", b"bbo.linear.BTCUSDT."}


def test_trades_once_each_in_order_with_their_own_seq() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(trade_frame("a", "b"))
    feed.send(trade_frame("b", "c"))
    out = drain(hub)
    assert [(t, p["id"], p["seq"], p["side"]) for t, p in out] == [
        ("trade.linear.BTCUSDT.", "a", 1, "buy"),
        ("trade.linear.BTCUSDT.", "b", 2, "buy"),
        ("trade.linear.BTCUSDT.", "c", 3, "buy"),
    ]
    assert hub.stats.trades_dup == 1


def test_snapshot_service_serves_current_live_messages_by_prefix() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(SNAP)
    feed.send(book_frame(101, [["98", "0"]], [], snapshot=False))
    feed.send(book_frame(5, [["1", "1"]], [["2", "1"]], snapshot=True, symbol="BTCUSDTX"))
    published = {t: p for t, p in hub.outbox}
    items = dict(hub.snapshot(wire.subscription("book.linear.BTCUSDT")))
    assert list(items) == [b"book.linear.BTCUSDT."]
    assert items[b"book.linear.BTCUSDT."] == published[b"book.linear.BTCUSDT."]
    assert orjson.loads(items[b"book.linear.BTCUSDT."])["seq"] == 2
    assert len(hub.snapshot(b"")) == 4
    assert {t for t, _ in hub.snapshot(b"bbo.")} == {
        b"bbo.linear.BTCUSDT.",
        b"bbo.linear.BTCUSDTX.",
    }


@pytest.mark.parametrize("garbage", [b"", b"\x07" * 30, b"short"])
def test_bad_envelopes_are_counted(garbage: bytes) -> None:
    hub = make_hub()
    hub.on_raw(garbage, 0.0)
    assert hub.stats.bad_envelopes == 1 and hub.outbox == []
    assert hub.events[0][0] == "bad_envelope"


def test_peer_disconnect_finds_the_dead_ingestor_by_its_missing_heartbeat() -> None:
    hub = make_hub(ingestor_timeout=30.0)
    alive, dead = Feed(hub, ingestor=b"alive"), Feed(hub, conn_id=2, ingestor=b"dead")
    alive.send(SNAP)
    dead.send(book_frame(5, [["1", "1"]], [["2", "1"]], snapshot=True, symbol="ETHUSDT"))
    drain(hub)
    hub.on_peer_disconnected(0.1)
    hub.tick(1.0)
    assert drain(hub) == []  # within the grace: a heartbeat may still come
    alive.now = 1.05
    alive.event(EnvelopeKind.HEARTBEAT)
    hub.tick(1.8)
    out = drain(hub)
    assert [(t, p["state"], p["reason"]) for t, p in out] == [
        ("status.linear.ETHUSDT.", "resyncing", "ingestor silent")
    ]
    assert hub.stats.ingestors_lost == 1


def test_pending_requests_are_repeated_for_a_new_control_subscriber() -> None:
    hub = make_hub(ingestor_timeout=1e9)
    feed = Feed(hub)
    feed.send(book_frame(100, [["99", "1"]], [], snapshot=False))  # builder restarted mid-stream
    feed.send(SNAP.replace(b"BTCUSDT", b"ETHUSDT"))
    assert len(hub.control) == 1
    hub.control.clear()
    hub.on_control_subscriber(0.1)
    assert [wire.decode_resync(m) for m in hub.control] == [
        wire.ResyncRequest(
            "linear", "orderbook.50.BTCUSDT", "delta before snapshot", ingestor="ing", conn_id=1
        )
    ]
    hub.control.clear()
    hub.tick(5.1)  # the repeat did not count as an attempt: this is the second, no reconnect
    assert [wire.decode_resync(m).reconnect for m in hub.control] == [False]
    hub.tick(10.2)  # the third: ask for a new connection
    assert [wire.decode_resync(m).reconnect for m in hub.control] == [False, True]


def test_new_topics_past_the_cap_are_counted_and_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from mdgw.core import hub as hub_module

    monkeypatch.setattr(hub_module, "MAX_TOPICS", 2)
    hub = make_hub()
    feed = Feed(hub)
    for symbol in ("AUSDT", "BUSDT", "CUSDT"):
        feed.send(book_frame(5, [["1", "1"]], [["2", "1"]], snapshot=True, symbol=symbol))
        feed.send(trade_frame(f"t-{symbol}", symbol=symbol))
    topics = {t for t, _ in hub.outbox}
    assert b"book.linear.CUSDT." not in topics and b"trade.linear.CUSDT." not in topics
    assert b"book.linear.BUSDT." in topics and b"trade.linear.BUSDT." in topics
    assert hub.stats.topics_refused == 2


# ------------------------------------------------------------------ conflation (max_rate)


def delta(u: int, bid: str, size: str) -> bytes:
    return book_frame(u, [[bid, size]], [], snapshot=False)


def test_max_rate_publishes_the_latest_state_once_per_interval() -> None:
    hub = make_hub(max_rate=10.0)  # at most one book per 0.1 s
    feed = Feed(hub)
    feed.send(SNAP)
    assert channels(drain(hub)) == ["status:live", "book:100", "bbo:100"]
    feed.now = 0.01
    feed.send(delta(101, "99.5", "4"))
    feed.send(delta(102, "98", "0"))
    assert drain(hub) == [] and hub.next_due == pytest.approx(0.1)
    hub.publish_due(0.05)  # not yet
    assert drain(hub) == []
    hub.publish_due(0.1)
    out = drain(hub)
    assert channels(out) == ["book:102", "bbo:102"]
    book = out[0][1]
    assert (book["seq"], book["u"]) == (2, 102)
    assert book["bids"] == [["99.5", "4"], ["99", "1"]]
    assert out[1][1]["seq"] == 2 and out[1][1]["bid"] == "99.5"
    assert hub.next_due is None
    # A frame after the interval is published at once.
    feed.now = 0.25
    feed.send(delta(103, "97", "1"))
    assert channels(drain(hub)) == ["book:103"]


def test_max_rate_drops_what_was_pending_when_the_book_resyncs() -> None:
    hub = make_hub(max_rate=10.0)
    feed = Feed(hub)
    feed.send(SNAP)
    drain(hub)
    feed.now = 0.01
    feed.send(delta(101, "99.5", "4"))
    feed.send(delta(105, "99.5", "5"))  # a gap
    assert channels(drain(hub)) == ["status:resyncing"]
    hub.publish_due(1.0)
    assert drain(hub) == []
    feed.now = 1.01
    feed.send(book_frame(200, [["90", "1"]], [["91", "1"]], snapshot=True))
    assert channels(drain(hub)) == ["status:live", "book:200", "bbo:200"]


def test_max_rate_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_rate"):
        make_hub(max_rate=-1.0)


@settings(max_examples=examples(60), deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=0.08),  # time to the next frame
            st.integers(min_value=0, max_value=3),  # which bid level changes
            st.integers(min_value=0, max_value=3),  # its new size (0 deletes)
            st.booleans(),  # run publish_due before the frame
        ),
        max_size=60,
    ),
    rate=st.sampled_from([5.0, 20.0, 100.0]),
)
def test_max_rate_against_publishing_every_frame(
    steps: list[tuple[float, int, int, bool]], rate: float
) -> None:
    """Conflated books are a subsequence of the unconflated ones (same u, same book), at most
    one per interval, seq +1 each, and the last state always gets out."""
    plain, conflated = make_hub(), make_hub(max_rate=rate)
    feeds = [Feed(plain), Feed(conflated)]
    for feed in feeds:
        feed.send(SNAP)
    books: list[tuple[float, dict[str, Any]]] = []  # (time published, payload)

    def collect(at: float) -> None:
        books.extend((at, p) for _, p in drain(conflated) if p["channel"] == "book")

    collect(0.0)
    now = 0.0
    for u, (dt, level, size, poll) in enumerate(steps, start=101):
        now += dt
        if poll:
            conflated.publish_due(now)
            collect(now)
        for feed in feeds:
            feed.now = now
            feed.send(delta(u, f"9{level}.5", str(size)))
        collect(now)
    while (due := conflated.next_due) is not None:  # the shell's timer
        assert due <= now + 1.0 / rate
        conflated.publish_due(due)
        collect(due)
    books_plain = {p["u"]: p for _, p in drain(plain) if p["channel"] == "book"}
    assert [p["seq"] for _, p in books] == list(range(1, len(books) + 1))
    for _, p in books:
        want = books_plain[p["u"]]
        assert (p["bids"], p["asks"]) == (want["bids"], want["asks"])
    assert books[-1][1]["u"] == max(books_plain)  # the last state always gets out
    us = [p["u"] for _, p in books]
    assert us == sorted(set(us))
    times = [t for t, _ in books]
    assert all(b - a >= 1.0 / rate - 1e-9 for a, b in itertools.pairwise(times))


def test_inputs_lost_resyncs_every_book_without_asking_until_its_next_snapshot() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(SNAP)
    feed.send(book_frame(100, [["9", "1"]], [["11", "1"]], snapshot=True, symbol="ETHUSDT"))
    drain(hub)
    hub.on_inputs_lost("journal hole", 1.0)
    out = drain(hub)
    assert [(p["symbol"], p["state"], p["reason"]) for _, p in out] == [
        ("BTCUSDT", "resyncing", "journal hole"),
        ("ETHUSDT", "resyncing", "journal hole"),
    ]
    assert hub.control == []  # nobody to ask in a replay; the tick asks after resync_timeout
    feed.send(book_frame(101, [["98", "0"]], [], snapshot=False))  # a delta is not enough
    assert drain(hub) == []
    feed.send(book_frame(120, [["99", "1"]], [["101", "1"]], snapshot=True))
    assert channels(drain(hub)) == ["status:live", "book:120", "bbo:120"]


def test_one_bybit_topic_on_two_categories_is_two_books() -> None:
    """The hub finds a frame's book by its category, then its Bybit topic: the same
    ``orderbook.1.BTCUSDT`` on linear and on spot is two books, each published on its own
    gateway topics from its own frames."""
    hub = make_hub()
    for category, price in [("linear", "100.5"), ("spot", "200.5"), ("linear", "101.5")]:
        hub.on_raw(
            oracles.encode_raw(
                EnvelopeKind.DATA,
                ingestor=b"ing-" + category.encode(),
                category=wire.category_code(category),
                conn_id=1,
                seq=1 if price != "101.5" else 2,
                recv_ns=123,
                frame=book_frame(
                    1 if price != "101.5" else 2,
                    [[price, "1"]],
                    [["300", "2"]],
                    snapshot=True,
                    depth=1,
                ),
            ),
            0.0,
        )
    books = [(t, p) for t, p in drain(hub) if t.startswith("book.")]
    assert [(t, p["bids"][0][0]) for t, p in books] == [
        (wire.topic("book", "linear", "BTCUSDT").decode(), "100.5"),
        (wire.topic("book", "spot", "BTCUSDT").decode(), "200.5"),
        (wire.topic("book", "linear", "BTCUSDT").decode(), "101.5"),
    ]
    assert [p["seq"] for _, p in books] == [1, 1, 2]

"""mdgw.core.hub with the newer Bybit streams: RPI books, depth 1 fused into bbo, trade
seq/RPI fields and split batches, system.status notices."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.core.test_hub import Feed, book_frame, drain, make_hub

from mdgw.core import wire
from mdgw.core.wire import EnvelopeKind


def rpi_frame(u: int, bids: list[list[str]], asks: list[list[str]], *, snapshot: bool) -> bytes:
    return orjson.dumps(
        {
            "topic": "orderbook.rpi.BTCUSDT",
            "ts": 2000 + u,
            "type": "snapshot" if snapshot else "delta",
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": 7 * u},
            "cts": 1999 + u,
        }
    )


def l1(u: int, seq: int, bid: str, ask: str) -> bytes:
    return orjson.dumps(
        {
            "topic": "orderbook.1.BTCUSDT",
            "ts": 5000 + u,
            "type": "snapshot",
            "data": {"s": "BTCUSDT", "b": [[bid, "1"]], "a": [[ask, "1"]], "u": u, "seq": seq},
            "cts": 1,
        }
    )


def deep(u: int, seq: int, bids: list[list[str]], asks: list[list[str]], *, snap: bool) -> bytes:
    return orjson.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": "snapshot" if snap else "delta",
            "ts": 6000 + u,
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": seq},
            "cts": 1,
        }
    )


def trades(*items: tuple[str, int, bool]) -> bytes:
    return orjson.dumps(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": 5,
            "data": [
                {
                    "T": 4,
                    "s": "BTCUSDT",
                    "S": "Sell",
                    "v": "0.1",
                    "p": "100.5",
                    "i": i,
                    "BT": False,
                    "RPI": rpi,
                    "seq": seq,
                }
                for i, seq, rpi in items
            ],
        }
    )


def notice(nid: str, state: str, begin: str = "1000", end: str = "2000") -> dict[str, Any]:
    return {
        "id": nid,
        "title": f"maintenance {nid}",
        "state": state,
        "begin": begin,
        "end": end,
        "href": "",
        "serviceTypes": [5],
        "product": [1, 2],
        "uidSuffix": [],
        "maintainType": 1,
        "env": 1,
    }


def status_frame(*notices: dict[str, Any]) -> bytes:
    return orjson.dumps({"topic": "system.status", "ts": 9, "data": list(notices)})


# --- RPI --------------------------------------------------------------------------------------


def test_rpi_book_publishes_on_its_own_channel_with_both_sizes() -> None:
    hub = make_hub(publish_depth=2)
    feed = Feed(hub)
    feed.send(
        rpi_frame(
            10,
            [["99", "1", "0"], ["98", "0", "2"], ["97", "1", "1"]],
            [["101", "1", "0.5"]],
            snapshot=True,
        )
    )
    out = drain(hub)
    assert [t for t, _ in out] == ["status.linear.BTCUSDT.", "rpi.linear.BTCUSDT."]
    status, rpi = out[0][1], out[1][1]
    assert (status["state"], status["feed"]) == ("live", "rpi")
    assert rpi["channel"] == "rpi" and rpi["depth"] == 2 and rpi["u"] == 10
    assert (rpi["ts"], rpi["cts"]) == (2010, 2009)  # the frame's, as rpi_frame() sent them
    assert rpi["bids"] == [["99", "1", "0"], ["98", "0", "2"]]
    assert rpi["asks"] == [["101", "1", "0.5"]]
    assert wire.decode_payload(orjson.dumps(rpi))["symbol"] == "BTCUSDT"
    feed.send(rpi_frame(11, [["99", "0", "0"]], [], snapshot=False))
    assert drain(hub)[0][1]["bids"] == [["98", "0", "2"], ["97", "1", "1"]]


def test_rpi_gap_resyncs_only_the_rpi_topic_and_snapshot_serves_it() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(book_frame(100, [["99", "1"]], [["101", "1"]], snapshot=True))
    feed.send(rpi_frame(10, [["99", "1", "0"]], [["101", "1", "0"]], snapshot=True))
    drain(hub)
    assert {t for t, _ in hub.snapshot(b"rpi.")} == {b"rpi.linear.BTCUSDT."}
    feed.send(rpi_frame(12, [], [], snapshot=False))
    out = drain(hub)
    assert [(p["state"], p["feed"]) for _, p in out] == [("resyncing", "rpi")]
    assert [wire.decode_resync(c).topic for c in hub.control] == ["orderbook.rpi.BTCUSDT"]
    assert hub.snapshot(b"rpi.") == []
    assert {t for t, _ in hub.snapshot(b"")} == {b"book.linear.BTCUSDT.", b"bbo.linear.BTCUSDT."}


def test_malformed_rpi_frame_resyncs_that_topic() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(rpi_frame(10, [["99", "1", "0"]], [["101", "1", "0"]], snapshot=True))
    drain(hub)
    feed.send(
        b'{"topic":"orderbook.rpi.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1"]]}}'
    )
    assert [p["state"] for _, p in drain(hub)] == ["resyncing"]
    assert wire.decode_resync(hub.control[0]).topic == "orderbook.rpi.BTCUSDT"


# --- depth 1 fused into bbo -------------------------------------------------------------------


def bbos(out: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, int, int]]:
    return [
        (p["bid"], p["ask"], p["bybit_seq"], p["depth"]) for t, p in out if p["channel"] == "bbo"
    ]


def test_fused_bbo_follows_the_freshest_seq_and_never_goes_back() -> None:
    hub = make_hub(fused=[("linear", "BTCUSDT")])
    feed = Feed(hub)
    feed.send(deep(500, 100, [["99", "1"], ["98", "1"]], [["101", "1"]], snap=True))
    feed.send(l1(7, 105, "99.5", "101"))  # fresher: depth 1 wins
    feed.send(deep(501, 103, [["98", "2"]], [], snap=False))  # older seq: book only
    feed.send(l1(7, 103, "99", "101"))  # older than 105: dropped
    feed.send(deep(502, 110, [["99.5", "1"]], [], snap=False))  # fresher, same top: no bbo
    feed.send(l1(8, 111, "99.5", "100.5"))
    out = drain(hub)
    assert bbos(out) == [("99", "101", 100, 50), ("99.5", "101", 105, 1), ("99.5", "100.5", 111, 1)]
    books = [p for t, p in out if t == "book.linear.BTCUSDT."]
    assert [b["u"] for b in books] == [500, 501, 502]  # depth 1 never publishes a book
    assert hub.snapshot(b"bbo.")[0][1] == [o for o in hub.snapshot(b"")][-1][1]
    statuses = [(p["state"], p["feed"]) for t, p in out if p["channel"] == "status"]
    assert statuses == [("live", "book"), ("live", "bbo")]


def test_fusion_happens_without_config_when_both_depths_arrive() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(deep(500, 100, [["99", "1"]], [["101", "1"]], snap=True))
    feed.send(l1(7, 99, "98", "101"))  # older than the deep book's top: dropped
    feed.send(l1(8, 120, "99", "100"))
    out = drain(hub)
    assert bbos(out) == [("99", "101", 100, 50), ("99", "100", 120, 1)]
    assert len(hub.snapshot(b"bbo.")) == 1


def test_fused_bbo_does_not_go_back_after_both_books_resync() -> None:
    hub = make_hub(fused=[("linear", "BTCUSDT")])
    feed = Feed(hub)
    feed.send(deep(500, 100, [["99", "1"]], [["101", "1"]], snap=True))
    feed.send(l1(7, 200, "99", "100"))
    drain(hub)
    feed.event(wire.EnvelopeKind.CONN_DOWN)  # both books resync
    feed.event(wire.EnvelopeKind.CONN_UP)
    feed.seq = 0
    feed.send(deep(600, 150, [["97", "1"]], [["100", "1"]], snap=True))  # older than 200
    feed.send(l1(9, 210, "98", "100"))
    assert bbos(drain(hub)) == [("98", "100", 210, 1)]


def test_lone_depth1_still_publishes_its_book() -> None:
    hub = make_hub()
    Feed(hub).send(l1(7, 1, "99", "100"))
    assert [t for t, _ in drain(hub)] == [
        "status.linear.BTCUSDT.",
        "book.linear.BTCUSDT.",
        "bbo.linear.BTCUSDT.",
    ]


# --- trades -----------------------------------------------------------------------------------


def test_trades_carry_bybit_seq_and_rpi_flag() -> None:
    hub = make_hub()
    Feed(hub).send(trades(("a", 50, False), ("b", 50, True)))
    out = [p for _, p in drain(hub)]
    assert [(p["id"], p["bybit_seq"], p["rpi"]) for p in out] == [("a", 50, False), ("b", 50, True)]
    assert [p["seq"] for p in out] == [1, 2]


def test_split_batch_with_the_same_seq_is_not_a_duplicate_but_replays_are() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(trades(("a", 50, False), ("b", 50, False)))
    feed.send(trades(("c", 50, False)))  # the rest of a batch Bybit split: same seq
    feed.send(trades(("b", 50, False), ("c", 50, False)))  # replayed after a reconnect
    feed.send(trades(("z", 40, False)))  # older seq, unseen id: a replay from before
    feed.send(trades(("d", 51, False)))
    out = [p["id"] for _, p in drain(hub)]
    assert out == ["a", "b", "c", "d"]
    assert hub.stats.trades_dup == 2 and hub.stats.trades_stale == 1


def test_option_trade_fields_are_published() -> None:
    hub = make_hub()
    frame = orjson.loads(trades(("a", 5, False)))
    frame["data"][0] |= {"mP": "61000.5", "iP": "61010", "mIv": "0.41", "iv": "0.4"}
    Feed(hub).send(orjson.dumps(frame))
    trade = drain(hub)[0][1]
    assert (trade["mark_price"], trade["index_price"], trade["mark_iv"], trade["iv"]) == (
        "61000.5",
        "61010",
        "0.41",
        "0.4",
    )


# --- system.status ----------------------------------------------------------------------------


def test_system_status_notices_are_published_once_per_version() -> None:
    hub = make_hub()
    feed = Feed(hub)
    feed.send(status_frame(notice("n1", "scheduled"), notice("n2", "completed")))
    feed.send(status_frame(notice("n1", "scheduled")))  # the same again: nothing
    feed.send(status_frame(notice("n1", "ongoing")))
    feed.send(status_frame(notice("n1", "ongoing", end="3000")))  # new expected end
    out = drain(hub)
    assert {t for t, _ in out} == {"status.bybit."}
    got = [(p["id"], p["state"], p["end"], p["seq"]) for _, p in out]
    assert got == [
        ("n1", "scheduled", 2000, 1),
        ("n2", "completed", 2000, 2),
        ("n1", "ongoing", 2000, 3),
        ("n1", "ongoing", 3000, 4),
    ]
    first = out[0][1]
    assert first["scope"] == "exchange" and first["begin"] == 1000
    assert first["service_types"] == [5] and first["title"] == "maintenance n1"
    assert wire.decode_payload(orjson.dumps(first))["id"] == "n1"
    assert [n.id for n in hub.notices.maintenance(1500)] == ["n1"]
    assert hub.stats.notices_out == 4 and hub.stats.notices_dup == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "", "state": "ongoing", "begin": "1", "end": "2"},
        {"id": "x", "state": "ongoing", "begin": "soon", "end": "2"},
        {"id": "x", "state": 5, "begin": "1", "end": "2"},
    ],
)
def test_bad_status_frames_are_counted_not_published(bad: dict[str, Any]) -> None:
    hub = make_hub()
    Feed(hub).send(orjson.dumps({"topic": "system.status", "ts": 1, "data": [bad]}))
    assert drain(hub) == [] and hub.stats.malformed == 1


def test_option_trades_of_one_base_coin_go_to_each_instruments_topic() -> None:
    hub = make_hub()
    items = [
        ("BTC-27DEC26-100000-C", "t1"),
        ("BTC-27DEC26-90000-P", "t2"),
        ("BTC-27DEC26-100000-C", "t3"),
    ]
    frame = {
        "id": "publicTrade.BTC-2",
        "topic": "publicTrade.BTC",
        "ts": 5,
        "type": "snapshot",
        "data": [
            {
                "T": 4,
                "s": sym,
                "S": "Buy",
                "v": "0.1",
                "p": "1500",
                "i": tid,
                "BT": False,
                "seq": 9,
                "mP": "1501",
                "iP": "95000",
                "mIv": "0.5",
                "iv": "0.49",
            }
            for sym, tid in items
        ],
    }
    Feed(hub).send(orjson.dumps(frame))
    out = drain(hub)
    assert [(t, p["id"], p["seq"]) for t, p in out] == [
        ("trade.linear.BTC-27DEC26-100000-C.", "t1", 1),
        ("trade.linear.BTC-27DEC26-100000-C.", "t3", 2),
        ("trade.linear.BTC-27DEC26-90000-P.", "t2", 1),
    ]
    assert out[0][1]["mark_iv"] == "0.5"


def test_option_trade_of_another_base_coin_is_malformed() -> None:
    hub = make_hub()
    frame = orjson.loads(trades(("a", 5, False)))
    frame["topic"] = "publicTrade.ETH"
    frame["data"][0]["s"] = "BTC-27DEC26-100000-C"
    Feed(hub).send(orjson.dumps(frame))
    assert drain(hub) == [] and hub.stats.malformed == 1


# --- orderbook.full ---------------------------------------------------------------------------


def full(
    u: int, seq: int, bids: list[list[str]], asks: list[list[str]], *, snap: bool = False
) -> bytes:
    return orjson.dumps(
        {
            "topic": "orderbook.full.BTCUSDT",
            "ts": 7000 + u,
            "type": "snapshot" if snap else "delta",
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": seq},
            "cts": 1,
        }
    )


def test_full_book_asks_for_a_snapshot_buffers_then_publishes_depth_full() -> None:
    hub = make_hub(publish_depth=2)
    feed = Feed(hub)
    feed.send(full(10, 100, [["99", "1"]], []))
    out = drain(hub)
    assert [(p["state"], p["reason"]) for _, p in out] == [
        ("resyncing", "waiting for the REST snapshot")
    ]
    assert [wire.decode_resync(c).topic for c in hub.control] == ["orderbook.full.BTCUSDT"]
    feed.send(full(11, 105, [["98", "1"]], []))
    assert drain(hub) == []  # buffered, still resyncing
    # The ingestor's REST snapshot, in order on the same connection: includes u=10.
    feed.send(full(10, 100, [["99", "1"], ["97", "3"]], [["101", "1"]], snap=True))
    out = drain(hub)
    assert [p["channel"] for _, p in out] == ["status", "book", "bbo"]
    book = out[1][1]
    assert (book["depth"], book["u"]) == ("full", 11)
    assert book["bids"] == [["99", "1"], ["98", "1"]]
    assert out[2][1]["depth"] == "full"
    feed.send(full(13, 120, [], []))  # a gap: resync, and the gap delta starts the buffer
    assert [p["state"] for _, p in drain(hub)] == ["resyncing"]


def test_full_book_snapshot_that_does_not_fit_is_asked_again() -> None:
    hub = make_hub(resync_min_interval=0.0)
    feed = Feed(hub)
    feed.send(full(10, 100, [["99", "1"]], []))
    hub.control.clear()
    drain(hub)
    feed.send(full(9, 90, [["99", "1"]], [], snap=True))  # older than the buffer
    hub.tick(0.0)
    assert [wire.decode_resync(c).topic for c in hub.control] == ["orderbook.full.BTCUSDT"]
    assert drain(hub) == []


def test_full_book_asks_the_new_connection_at_once_after_a_drop() -> None:
    """A closed connection takes the full book's sync with it. Its ingestor reconnects and
    resubscribes by itself, which brings an ordinary book its snapshot but a full book only
    deltas: so the new connection's first delta asks that connection for the REST snapshot
    at once, not a whole resync_timeout after the drop."""
    hub = make_hub(resync_timeout=5.0, resync_min_interval=1.0)
    old = Feed(hub, conn_id=1)
    old.send(full(10, 100, [["99", "1"]], []))
    old.send(full(10, 100, [["99", "1"]], [["101", "1"]], snap=True))
    assert [p["channel"] for _, p in drain(hub)] == ["status", "status", "book", "bbo"]
    hub.control.clear()
    old.now = 10.0
    old.event(EnvelopeKind.CONN_DOWN)
    assert [p["state"] for _, p in drain(hub)] == ["resyncing"]
    assert hub.control == []  # nothing to ask while the connection is down

    new = Feed(hub, conn_id=2)
    new.now = 10.4
    new.event(EnvelopeKind.CONN_UP)
    new.send(full(50, 500, [["98", "1"]], []))  # the new connection's first delta
    asked = [wire.decode_resync(c) for c in hub.control]
    assert [(r.topic, r.ingestor, r.conn_id) for r in asked] == [
        ("orderbook.full.BTCUSDT", "ing", 2)
    ]
    hub.control.clear()
    new.send(full(51, 505, [["97", "2"]], []))
    hub.tick(12.0)  # asked once, not again before resync_timeout
    assert hub.control == []
    new.send(full(50, 500, [["98", "1"]], [["102", "1"]], snap=True))
    out = drain(hub)
    assert [p["channel"] for _, p in out][-3:] == ["status", "book", "bbo"]
    assert (out[-2][1]["u"], out[-2][1]["bids"]) == (51, [["98", "1"], ["97", "2"]])


def test_max_rate_conflates_the_full_book_like_any_book() -> None:
    hub = make_hub(publish_depth=2, max_rate=10.0)  # at most one book per 0.1 s
    feed = Feed(hub)
    feed.send(full(10, 100, [["99", "1"]], []))
    feed.send(full(10, 100, [["99", "1"]], [["101", "1"]], snap=True))
    assert [p["channel"] for _, p in drain(hub)] == ["status", "status", "book", "bbo"]
    feed.now = 0.01
    feed.send(full(11, 105, [["98", "2"]], []))
    feed.send(full(12, 110, [["99", "3"]], []))
    assert drain(hub) == [] and hub.next_due == pytest.approx(0.1)
    hub.publish_due(0.1)
    out = drain(hub)
    assert [p["channel"] for _, p in out] == ["book", "bbo"]
    book = out[0][1]
    assert (book["depth"], book["u"], book["seq"]) == ("full", 12, 2)
    assert book["bids"] == [["99", "3"], ["98", "2"]]
    assert hub.next_due is None


def test_book_rows_label_rpi_and_full_books_by_their_kind() -> None:
    """Metrics and health see an RPI book as depth "rpi" and a full book as depth "full",
    so neither collides with the symbol's ordinary depth-50 book."""
    hub = make_hub(publish_depth=2)
    feed = Feed(hub)
    feed.send(rpi_frame(10, [["99", "1", "0"]], [["101", "1", "0"]], snapshot=True))
    feed.send(deep(1, 5, [["99", "1"]], [["101", "1"]], snap=True))
    feed.send(full(10, 100, [["99", "1"]], []))
    rows = {(row[2], row[3].value) for row in hub.book_rows()}
    assert rows == {("rpi", "live"), (50, "live"), ("full", "resyncing")}


def test_rpi_book_is_single_source_beside_an_arbitrated_book() -> None:
    """orderbook.rpi is not arbitrated: a second connection's delta cannot continue it, and
    the connection that fed it closing resyncs it, while the A/B book goes on."""
    hub = make_hub()
    a, b = Feed(hub, conn_id=1), Feed(hub, conn_id=2)
    for feed in (a, b):
        feed.send(book_frame(100, [["99", "1"]], [["101", "1"]], snapshot=True))
    a.send(rpi_frame(10, [["99", "1", "0"]], [["101", "1", "0"]], snapshot=True))
    drain(hub)
    assert {t for t, _ in hub.snapshot(b"rpi.")} == {b"rpi.linear.BTCUSDT."}
    a.event(wire.EnvelopeKind.CONN_DOWN)
    out = drain(hub)
    assert [(t, p["state"]) for t, p in out] == [("status.linear.BTCUSDT.", "resyncing")]
    assert out[0][1]["feed"] == "rpi"
    assert hub.snapshot(b"rpi.") == []
    assert {t for t, _ in hub.snapshot(b"")} == {b"book.linear.BTCUSDT.", b"bbo.linear.BTCUSDT."}
    b.send(rpi_frame(11, [["99", "2", "0"]], [], snapshot=False))  # not its snapshot's source
    assert hub.snapshot(b"rpi.") == []
    b.send(rpi_frame(11, [["99", "2", "0"]], [["101", "1", "0"]], snapshot=True))
    out = drain(hub)
    assert [p["state"] for _, p in out if "state" in p] == ["live"]
    assert {t for t, _ in hub.snapshot(b"rpi.")} == {b"rpi.linear.BTCUSDT."}

"""Bybit's v5 public protocol as the simulator speaks it, over real sockets on loopback.

Each test starts its own simulator on a free port and talks to it with a plain websockets
client; the last tests cover the sans-I/O Session directly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.protocol import Reply, Session, Subscribed, Unsubscribed
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.reference import ReferenceBook
from mdgw.testing.ws_receive import recv_frame, recv_until

STREAMS: dict[str, tuple[str, ...]] = {
    "spot": ("BTCUSDT", "ETHUSDT"),
    "linear": ("BTCUSDT", "ETHUSDT"),
    "inverse": ("BTCUSD", "ETHUSD"),
}


def params(**overrides: Any) -> SimulatorParams:
    values: dict[str, Any] = {
        "streams": STREAMS,
        "port": 0,
        "levels": 1000,
        "snapshot_first": 0.0,
        "stats_interval": 3600.0,
    }
    values.update(overrides)
    return SimulatorParams(**values)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(params()) as server:
        yield server


def is_control(frame: dict[str, Any]) -> bool:
    return "success" in frame


async def request(ws: ClientConnection, body: dict[str, Any]) -> dict[str, Any]:
    """Send a request; return its reply (data frames in between are skipped)."""
    await ws.send(orjson.dumps(body).decode())
    return await recv_until(ws, is_control)


# --- acks and pongs -------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["spot", "linear", "inverse"])
async def test_acks_and_pongs_have_each_categorys_shape(
    sim: SimulatorServer, category: str
) -> None:
    symbol = STREAMS[category][0]
    async with connect(sim.ws_url(category), compression=None) as ws:
        pong = await request(ws, {"op": "ping"})
        conn_id = pong["conn_id"]
        assert conn_id in sim.conn_ids(category)
        ack = await request(ws, {"op": "subscribe", "args": [f"publicTrade.{symbol}"]})
        unack = await request(ws, {"op": "unsubscribe", "args": [f"publicTrade.{symbol}"]})
        pong_id = await request(ws, {"req_id": "p1", "op": "ping"})
        ack_id = await request(
            ws, {"req_id": "s1", "op": "subscribe", "args": [f"orderbook.1.{symbol}"]}
        )
    if category == "spot":
        assert list(pong.items()) == [
            ("success", True),
            ("ret_msg", "pong"),
            ("conn_id", conn_id),
            ("op", "ping"),
        ]
        assert list(ack.items()) == [
            ("success", True),
            ("ret_msg", "subscribe"),
            ("conn_id", conn_id),
            ("op", "subscribe"),
        ]
        assert (unack["ret_msg"], unack["op"]) == ("unsubscribe", "unsubscribe")
        assert list(ack_id) == ["success", "ret_msg", "conn_id", "req_id", "op"]
        assert ack_id["req_id"] == "s1"
    else:
        assert list(pong.items()) == [
            ("success", True),
            ("ret_msg", "pong"),
            ("conn_id", conn_id),
            ("req_id", ""),
            ("op", "ping"),
        ]
        assert list(ack.items()) == [
            ("success", True),
            ("ret_msg", ""),
            ("conn_id", conn_id),
            ("req_id", ""),
            ("op", "subscribe"),
        ]
        assert list(unack.items()) == [
            ("success", True),
            ("ret_msg", ""),
            ("conn_id", conn_id),
            ("req_id", ""),
            ("op", "unsubscribe"),
        ]
        assert ack_id["req_id"] == "s1"
    assert pong_id["req_id"] == "p1"


# --- errors -----------------------------------------------------------------------------


async def test_spot_refuses_more_than_10_args(sim: SimulatorServer) -> None:
    topics = [f"orderbook.{d}.{s}" for d in (1, 50, 200, 1000) for s in STREAMS["spot"]]
    topics += [f"publicTrade.{s}" for s in STREAMS["spot"]]
    assert len(topics) == 10
    async with connect(sim.ws_url("spot")) as ws:
        error = await request(ws, {"op": "subscribe", "args": [*topics, "orderbook.1.XRPUSDT"]})
        assert (error["success"], error["ret_msg"], error["op"]) == (
            False,
            "args size >10",
            "subscribe",
        )
        assert "req_id" not in error
        # Ten is fine, and nothing of the refused request was subscribed.
        ok = await request(ws, {"op": "subscribe", "args": topics})
        assert ok["success"] is True
    async with connect(sim.ws_url("linear")) as ws:  # no such limit on linear
        topics = [t for t in topics if "XRP" not in t]
        many = [*topics, "orderbook.1.XRPUSDT"]
        error = await request(ws, {"op": "subscribe", "args": many})
        assert error["ret_msg"] == "error:handler not found,topic:orderbook.1.XRPUSDT"


@pytest.mark.parametrize(
    "topic",
    [
        "orderbook.50.NOSUCHSYM",  # unknown symbol
        "orderbook.500.BTCUSDT",  # a depth Bybit removed
        "orderbook.25.BTCUSDT",  # a depth linear never had
        "tickers.BTCUSDT",  # a topic kind the simulator does not serve
        "orderbook.50.BTCUSD",  # an inverse symbol on linear
    ],
)
async def test_handler_not_found_rejects_the_whole_batch(sim: SimulatorServer, topic: str) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        good = "orderbook.50.BTCUSDT"
        error = await request(ws, {"req_id": "7", "op": "subscribe", "args": [good, topic]})
        assert list(error.items()) == [
            ("success", False),
            ("ret_msg", f"error:handler not found,topic:{topic}"),
            ("conn_id", error["conn_id"]),
            ("req_id", "7"),
            ("op", "subscribe"),
        ]
        # The good topic of the refused batch was not subscribed: subscribing it works now.
        assert (await request(ws, {"op": "subscribe", "args": [good]}))["success"] is True


async def test_already_subscribed_rejects_the_whole_batch(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        first, second = "orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT"
        assert (await request(ws, {"op": "subscribe", "args": [first]}))["success"] is True
        error = await request(ws, {"op": "subscribe", "args": [second, first]})
        assert error["success"] is False
        assert error["ret_msg"] == f"error:already subscribed,topic:{first}"
        # Nothing of the batch was taken: the second topic is still free...
        assert (await request(ws, {"op": "subscribe", "args": [second]}))["success"] is True
        # ...and a topic twice in one request is "already subscribed" too.
        error = await request(ws, {"op": "subscribe", "args": ["publicTrade.X", "publicTrade.X"]})
        assert error["ret_msg"] == "error:handler not found,topic:publicTrade.X"
        twice = ["publicTrade.BTCUSDT", "publicTrade.BTCUSDT"]
        error = await request(ws, {"op": "subscribe", "args": twice})
        assert error["ret_msg"] == "error:already subscribed,topic:publicTrade.BTCUSDT"
    # Another connection may subscribe the same topic.
    async with connect(sim.ws_url("linear")) as other:
        assert (await request(other, {"op": "subscribe", "args": [first]}))["success"] is True


async def test_args_longer_than_21000_characters_are_refused() -> None:
    # Long symbol names so that a few hundred topics pass 21,000 characters.
    symbols = tuple(f"LONGNAME{i:03d}XXXXXXXXXXXXXXXXUSDT" for i in range(120))
    topics = [f"orderbook.{d}.{s}" for s in symbols for d in (1, 50, 200, 1000)]
    sim = SimulatorServer(params(streams={"linear": symbols}, rate=0.05))
    async with sim, connect(sim.ws_url("linear")) as ws:
        taken = 0
        for start in range(0, len(topics), 40):
            batch = topics[start : start + 40]
            reply = await request(ws, {"op": "subscribe", "args": batch})
            if not reply["success"]:
                break
            taken += sum(map(len, batch))
        assert reply["ret_msg"] == f"error:args length >21000,topic:{batch[0]}"
        assert taken <= 21_000 < taken + sum(map(len, batch))
        # The refused batch took nothing: its first topic still fits on its own.
        assert taken + len(batch[0]) <= 21_000
        assert (await request(ws, {"op": "subscribe", "args": batch[:1]}))["success"] is True


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        '{"op": "auth"}',
        '{"args": ["orderbook.1.BTCUSDT"]}',
        '{"op": "subscribe", "args": "orderbook.1.BTCUSDT"}',
        '{"op": "subscribe", "args": [1]}',
    ],
)
async def test_malformed_requests_get_an_error_and_the_connection_stays(
    sim: SimulatorServer, message: str
) -> None:
    async with connect(sim.ws_url("inverse")) as ws:
        await ws.send(message)
        error = await recv_until(ws, is_control)
        assert (error["success"], error["ret_msg"]) == (False, "error:invalid request")
        assert error["op"] in ("", "auth", "subscribe")
        assert (await request(ws, {"op": "ping"}))["ret_msg"] == "pong"


# --- data -------------------------------------------------------------------------------


async def test_snapshot_then_deltas_with_u_plus_one_match_the_truth(sim: SimulatorServer) -> None:
    topic = "orderbook.50.BTCUSDT"
    async with connect(sim.ws_url("linear")) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "args": [topic]}).decode())
        ack = await recv_frame(ws)
        assert ack["success"] is True  # snapshot_first=0: the ack comes first
        snapshot = await recv_frame(ws)
        assert (snapshot["topic"], snapshot["type"]) == (topic, "snapshot")
        book = ReferenceBook()
        book.apply(snapshot)
        for _ in range(15):
            delta = await recv_until(ws, lambda f: f.get("topic") == topic)
            assert delta["type"] == "delta"
            assert delta["data"]["u"] == book.u + 1  # type: ignore[operator]
            book.apply(delta)
            truth = sim.market.truth("linear", "BTCUSDT", 50, delta["data"]["u"])
            assert (book.bid_levels(), book.ask_levels()) == (truth.bids, truth.asks)


async def test_every_subscriber_sees_the_same_u_sequence(sim: SimulatorServer) -> None:
    topic = "orderbook.200.ETHUSDT"
    async with connect(sim.ws_url("spot")) as one, connect(sim.ws_url("spot")) as two:
        await request(one, {"op": "subscribe", "args": [topic]})
        first = await recv_until(one, lambda f: f.get("topic") == topic)
        await request(two, {"op": "subscribe", "args": [topic]})
        late = await recv_until(two, lambda f: f.get("topic") == topic)
        assert late["type"] == "snapshot"
        # From the late joiner's snapshot on, both get the same frames, byte for byte.
        frames_one = [first]
        while frames_one[-1]["data"]["u"] < late["data"]["u"] + 3:
            frames_one.append(await recv_until(one, lambda f: f.get("topic") == topic))
        frames_two = [late]
        while frames_two[-1]["data"]["u"] < late["data"]["u"] + 3:
            frames_two.append(await recv_until(two, lambda f: f.get("topic") == topic))
        after_one = [f for f in frames_one if f["data"]["u"] > late["data"]["u"]]
        assert after_one == frames_two[1:]


async def test_snapshot_may_arrive_before_the_ack() -> None:
    sim = SimulatorServer(params(snapshot_first=1.0))
    async with sim, connect(sim.ws_url("linear")) as ws:
        await ws.send('{"op":"subscribe","args":["orderbook.1.BTCUSDT","orderbook.50.BTCUSDT"]}')
        first, second, third = [await recv_frame(ws) for _ in range(3)]
    assert [first["type"], second["type"]] == ["snapshot", "snapshot"]
    assert third["success"] is True


async def test_level1_resends_the_same_u_when_nothing_changes() -> None:
    # Slow market (one step per symbol every 5 s), fast re-sends: most frames are re-sends.
    sim = SimulatorServer(params(rate=0.2, resend_interval=0.2))
    async with sim, connect(sim.ws_url("linear")) as ws:
        await request(ws, {"op": "subscribe", "args": ["orderbook.1.ETHUSDT"]})
        frames = [await recv_until(ws, lambda f: "topic" in f) for _ in range(4)]
    assert all(f["type"] == "snapshot" for f in frames)
    pairs = list(itertools.pairwise(frames))
    # u never goes back and never jumps; at least one re-send has the same u and book.
    assert all(0 <= b["data"]["u"] - a["data"]["u"] <= 1 for a, b in pairs)
    same = [(a, b) for a, b in pairs if a["data"]["u"] == b["data"]["u"]]
    assert same
    for a, b in same:
        assert (a["data"]["b"], a["data"]["a"]) == (b["data"]["b"], b["data"]["a"])
        assert b["ts"] > a["ts"]
        assert b["data"]["seq"] > a["data"]["seq"]


async def test_resubscribing_gives_a_fresh_snapshot_at_the_current_u(sim: SimulatorServer) -> None:
    topic = "orderbook.50.ETHUSDT"
    async with connect(sim.ws_url("linear")) as ws:
        # A second topic keeps frames flowing while the first is unsubscribed.
        await request(ws, {"op": "subscribe", "args": ["publicTrade.BTCUSDT", topic]})
        snapshot = await recv_until(ws, lambda f: f.get("topic") == topic)
        last = await recv_until(ws, lambda f: f.get("topic") == topic)
        unack = await request(ws, {"op": "unsubscribe", "args": [topic]})
        assert unack["op"] == "unsubscribe"
        before = sim.market.current_u("linear", "ETHUSDT", 50)
        # Let the market move on while we are away: the topic's u keeps counting.
        async with asyncio.timeout(5):
            while sim.market.current_u("linear", "ETHUSDT", 50) < before + 3:
                frame = await recv_frame(ws)
                assert frame.get("topic") != topic
        await ws.send(orjson.dumps({"op": "subscribe", "args": [topic]}).decode())
        fresh = await recv_until(ws, lambda f: f.get("topic") == topic)
        assert fresh["type"] == "snapshot"
        assert fresh["data"]["u"] >= before + 3 > last["data"]["u"] >= snapshot["data"]["u"]
        book = ReferenceBook()
        book.apply(fresh)
        truth = sim.market.truth("linear", "ETHUSDT", 50, fresh["data"]["u"])
        assert (book.bid_levels(), book.ask_levels()) == (truth.bids, truth.asks)
        delta = await recv_until(ws, lambda f: f.get("topic") == topic)
        assert (delta["type"], delta["data"]["u"]) == ("delta", fresh["data"]["u"] + 1)


# --- the sans-I/O session ---------------------------------------------------------------------


def test_session_counts_args_length_and_frees_it_on_unsubscribe() -> None:
    session = Session("linear", "c1", lambda topic: True)
    outcome = session.receive('{"op":"subscribe","args":["a","bb"]}')
    assert isinstance(outcome, Subscribed) and outcome.topics == ("a", "bb")
    assert session.args_length == 3
    outcome = session.receive('{"op":"unsubscribe","args":["bb","zz"]}')
    assert isinstance(outcome, Unsubscribed) and outcome.topics == ("bb",)
    assert session.args_length == 1 and session.topics == ["a"]
    too_long = orjson.dumps({"op": "subscribe", "args": ["x" * 20_999, "y"]})
    error = session.receive(too_long)
    assert isinstance(error, Reply) and error.kind == "error"
    assert (
        orjson.loads(error.payload)["ret_msg"] == f"error:args length >21000,topic:{'x' * 20_999}"
    )
    fits = session.receive(orjson.dumps({"op": "subscribe", "args": ["x" * 20_999]}))
    assert isinstance(fits, Subscribed) and session.args_length == 21_000


def test_session_never_raises_on_garbage() -> None:
    session = Session("spot", "c1", lambda topic: topic == "ok")
    for message in (b"\xff\xfe", "", "null", "1", '{"op": null}', '{"op":"subscribe","args":null}'):
        outcome = session.receive(message)
        assert isinstance(outcome, Reply) and outcome.kind == "error"
    outcome = session.receive('{"op":"subscribe","req_id":5,"args":["ok"]}')
    assert isinstance(outcome, Subscribed)
    assert orjson.loads(outcome.ack.payload)["req_id"] == "5"


def test_option_sessions_answer_in_the_option_shapes() -> None:
    session = Session("option", "c1", lambda t: t != "orderbook.25.NOPE", clock_ms=lambda: 42)
    pong = session.receive(b'{"op":"ping"}')
    assert isinstance(pong, Reply) and orjson.loads(pong.payload) == {"args": ["42"], "op": "pong"}
    sub = session.receive(b'{"op":"subscribe","args":["orderbook.25.X","publicTrade.BTC"]}')
    assert isinstance(sub, Subscribed)
    body = orjson.loads(sub.ack.payload)
    assert body["type"] == "COMMAND_RESP" and body["success"] is True
    assert body["data"] == {
        "failTopics": [],
        "successTopics": ["orderbook.25.X", "publicTrade.BTC"],
    }
    bad = session.receive(b'{"op":"subscribe","args":["orderbook.25.NOPE"]}')
    assert isinstance(bad, Reply)
    assert orjson.loads(bad.payload)["data"]["failTopics"] == ["orderbook.25.NOPE"]
    many = orjson.dumps({"op": "subscribe", "args": [f"orderbook.25.S{i}" for i in range(1999)]})
    assert isinstance(session.receive(many), Reply)  # past 2,000 args on the connection

"""Every fault switch, seen from a plain websockets client on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mdgw.simulator.faults import FaultError, FaultKind, FaultRequest, malformed_frame
from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.reference import ReferenceBook
from mdgw.testing.ws_receive import recv_frame, recv_until

TOPIC = "orderbook.50.BTCUSDT"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    params = SimulatorParams(
        streams={"linear": ("BTCUSDT", "ETHUSDT"), "spot": ("BTCUSDT",)},
        port=0,
        levels=1000,
        snapshot_first=0.0,
        stats_interval=3600.0,
    )
    async with SimulatorServer(params) as server:
        yield server


async def subscribed(ws: ClientConnection, *topics: str) -> tuple[str, ReferenceBook]:
    """Subscribe; return the conn_id and a book built from the (first topic's) snapshot."""
    await ws.send(orjson.dumps({"op": "subscribe", "args": list(topics)}).decode())
    ack = await recv_until(ws, lambda f: "success" in f)
    assert ack["success"] is True
    book = ReferenceBook()
    book.apply(await recv_until(ws, lambda f: f.get("topic") == topics[0]))
    return ack["conn_id"], book


async def next_raw(ws: ClientConnection, topic: str = TOPIC, timeout: float = 5.0) -> bytes:
    """The next message about *topic*, undecoded (it may not be JSON)."""
    prefix = b'{"topic":"' + topic.encode() + b'"'
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv(decode=False)
            if message.startswith(prefix):
                return message


async def test_drop_aborts_without_a_close_frame(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws, connect(sim.ws_url("spot")) as spared:
        conn_id, _ = await subscribed(ws, TOPIC)
        await subscribed(spared, TOPIC)
        assert sim.apply_fault(FaultRequest(FaultKind.DROP, category="linear")) == 1
        with pytest.raises(ConnectionClosed) as closed:
            await recv_until(ws, lambda f: False)
        assert closed.value.rcvd is None  # no close frame: the TCP connection was aborted
        assert ws.close_code == 1006
        # Other categories keep going.
        await recv_until(spared, lambda f: f.get("topic") == TOPIC)
    async with asyncio.timeout(5):
        while conn_id in sim.conn_ids():
            await asyncio.sleep(0.01)


async def test_skip_makes_a_gap_for_one_connection_only(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws, connect(sim.ws_url("linear")) as other:
        conn_id, book = await subscribed(ws, TOPIC)
        _, other_book = await subscribed(other, TOPIC)
        assert sim.apply_fault(FaultRequest(FaultKind.SKIP, conn_id=conn_id, topic=TOPIC)) == 1
        steps: list[int] = []
        last_u = book.u
        assert last_u is not None
        while len(steps) < 10:
            delta = await recv_until(ws, lambda f: f.get("topic") == TOPIC)
            steps.append(delta["data"]["u"] - last_u)
            last_u = delta["data"]["u"]
        assert sorted(steps) == [1] * 9 + [2]  # exactly one u is missing
        while other_book.u is not None and other_book.u < last_u:
            delta = await recv_until(other, lambda f: f.get("topic") == TOPIC)
            assert delta["data"]["u"] == other_book.u + 1
            other_book.apply(delta)


async def test_restart_sends_u_1_and_the_truth_follows(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        _, book = await subscribed(ws, TOPIC)
        assert sim.apply_fault(FaultRequest(FaultKind.RESTART, category="linear", topic=TOPIC)) == 1
        restart = await recv_until(
            ws, lambda f: f.get("topic") == TOPIC and f["type"] == "snapshot"
        )
        assert restart["data"]["u"] == 1
        book.apply(restart)
        for expected in (2, 3, 4):
            delta = await recv_until(ws, lambda f: f.get("topic") == TOPIC)
            assert (delta["type"], delta["data"]["u"]) == ("delta", expected)
            book.apply(delta)
        truth = sim.market.truth("linear", "BTCUSDT", 50, 4)
        assert (book.bid_levels(), book.ask_levels()) == (truth.bids, truth.asks)


async def test_crossed_delta_crosses_the_book_on_the_wire_only(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        conn_id, book = await subscribed(ws, TOPIC)
        sim.apply_fault(FaultRequest(FaultKind.CROSSED, conn_id=conn_id, topic=TOPIC))
        while not book.crossed():
            delta = await recv_until(ws, lambda f: f.get("topic") == TOPIC)
            assert delta["data"]["u"] == book.u + 1  # type: ignore[operator]
            book.apply(delta)
        crossed_u = book.u
        assert crossed_u is not None
        truth = sim.market.truth("linear", "BTCUSDT", 50, crossed_u)
        assert truth.bids[0][0] < truth.asks[0][0]  # the truth is not crossed
        following = await recv_until(ws, lambda f: f.get("topic") == TOPIC)
        assert following["data"]["u"] == crossed_u + 1


async def test_malformed_frame_is_attributable_invalid_json(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        conn_id, book = await subscribed(ws, TOPIC, "orderbook.1.BTCUSDT")
        sim.apply_fault(FaultRequest(FaultKind.MALFORMED, conn_id=conn_id, topic=TOPIC))
        while True:
            raw = await next_raw(ws)
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError:
                break
            book.apply(frame)
        assert raw.startswith(b'{"topic":"orderbook.50.BTCUSDT"')
        following = orjson.loads(await next_raw(ws))
        assert following["data"]["u"] == book.u + 2  # type: ignore[operator]


async def test_oversized_frame_trips_a_4_mib_limit(sim: SimulatorServer) -> None:
    limit = 4 * 1024 * 1024
    async with connect(sim.ws_url("linear"), max_size=limit) as small:
        conn_id, _ = await subscribed(small, TOPIC)
        assert sim.apply_fault(FaultRequest(FaultKind.OVERSIZED, conn_id=conn_id, topic=TOPIC)) == 1
        with pytest.raises(ConnectionClosed) as closed:
            await recv_until(small, lambda f: False, timeout=10)
        assert closed.value.sent is not None
        assert closed.value.sent.code == 1009  # the client gave up: message too big
    async with connect(sim.ws_url("linear"), max_size=None) as big:
        conn_id, _ = await subscribed(big, TOPIC, "publicTrade.BTCUSDT")
        sim.apply_fault(
            FaultRequest(FaultKind.OVERSIZED, conn_id=conn_id)
        )  # the next data frame of any topic
        raw = await recv_until_big(big)
        assert len(raw) >= 5 * 1024 * 1024 > limit
        frame = orjson.loads(raw)
        assert frame["topic"] in (TOPIC, "publicTrade.BTCUSDT") and "pad" in frame


async def recv_until_big(ws: ClientConnection) -> bytes:
    async with asyncio.timeout(10):
        while True:
            message = await ws.recv(decode=False)
            if len(message) > 1024 * 1024:
                return message


async def test_silence_sends_nothing_not_even_pongs(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear"), ping_interval=None) as ws:
        conn_id, _ = await subscribed(ws, TOPIC)
        await recv_until(ws, lambda f: f.get("topic") == TOPIC)
        started = time.monotonic()
        assert sim.apply_fault(FaultRequest(FaultKind.SILENCE, conn_id=conn_id, seconds=1.0)) == 1
        # Drain what was already on its way, then nothing for the rest of the second.
        await ws.send('{"op":"ping"}')
        async with asyncio.timeout(5):
            while True:
                frame = await recv_frame(ws)
                if time.monotonic() - started > 0.3:
                    first_after = frame
                    break
        assert time.monotonic() - started >= 0.95
        # Then it talks again, and answers the ping it had not read.
        if first_after.get("ret_msg") != "pong":
            first_after = await recv_until(ws, lambda f: f.get("ret_msg") == "pong")
        assert first_after["conn_id"] == conn_id


async def test_mute_pongs_keeps_data_flowing(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("spot")) as ws:
        conn_id, _ = await subscribed(ws, TOPIC)
        sim.apply_fault(FaultRequest(FaultKind.MUTE_PONGS, conn_id=conn_id, seconds=0.6))
        await ws.send('{"op":"ping"}')
        started = time.monotonic()
        data = 0
        async with asyncio.timeout(5):
            while time.monotonic() - started < 0.5:
                frame = await recv_frame(ws)
                assert "success" not in frame  # no pong while muted
                data += 1
        assert data > 0
        async with asyncio.timeout(5):
            while time.monotonic() - started < 0.7:
                await recv_frame(ws)
        await ws.send('{"op":"ping"}')
        assert (await recv_until(ws, lambda f: "success" in f))["ret_msg"] == "pong"


async def test_refuse_answers_503_then_recovers(sim: SimulatorServer) -> None:
    sim.apply_fault(FaultRequest(FaultKind.REFUSE, seconds=0.5))
    with pytest.raises(InvalidStatus) as refused:
        async with connect(sim.ws_url("linear")):
            pass
    assert refused.value.response.status_code == 503
    async with asyncio.timeout(5):
        while True:
            try:
                async with connect(sim.ws_url("linear")) as ws:
                    await ws.send('{"op":"ping"}')
                    assert (await recv_frame(ws))["ret_msg"] == "pong"
                    break
            except InvalidStatus:
                await asyncio.sleep(0.05)


async def test_clear_disarms_pending_faults(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        conn_id, book = await subscribed(ws, TOPIC)
        sim.apply_fault(FaultRequest(FaultKind.SKIP, conn_id=conn_id, topic=TOPIC))
        sim.apply_fault(FaultRequest(FaultKind.MUTE_PONGS, conn_id=conn_id, seconds=30))
        assert sim.apply_fault(FaultRequest(FaultKind.CLEAR)) == 1
        for _ in range(4):
            delta = await recv_until(ws, lambda f: f.get("topic") == TOPIC)
            assert delta["data"]["u"] == book.u + 1  # type: ignore[operator]
            book.apply(delta)
        await ws.send('{"op":"ping"}')
        assert (await recv_until(ws, lambda f: "success" in f))["ret_msg"] == "pong"


async def test_fault_requests_parse_and_refuse_nonsense(sim: SimulatorServer) -> None:
    request = FaultRequest.from_query({"kind": "silence", "seconds": "2.5", "category": "spot"})
    assert (request.kind, request.seconds, request.category) == (FaultKind.SILENCE, 2.5, "spot")
    assert FaultRequest.from_query(request.to_query()) == request
    for query in (
        {"kind": "explode"},
        {"kind": "silence"},  # needs seconds
        {"kind": "restart", "topic": TOPIC},  # needs a category
        {"kind": "drop", "category": "spread"},
        {"kind": "drop", "bogus": "1"},
        {"kind": "refuse", "seconds": "soon"},
    ):
        with pytest.raises(FaultError):
            FaultRequest.from_query(query)
    with pytest.raises(FaultError):
        sim.apply_fault(FaultRequest(FaultKind.CROSSED, topic="publicTrade.BTCUSDT"))
    with pytest.raises(FaultError):
        sim.apply_fault(
            FaultRequest(FaultKind.RESTART, category="linear", topic="orderbook.50.NOSUCH")
        )
    assert malformed_frame(b'{"topic":"t","x":1}').startswith(b'{"topic":"t"')


async def test_every_connection_gets_the_same_u_and_bytes_and_delay_holds_one_back(
    sim: SimulatorServer,
) -> None:
    # Bybit's u is per topic, the same on every connection: the A/B arbitration relies on it.
    async def read(ws: ClientConnection, n: int) -> dict[int, tuple[float, bytes]]:
        seen: dict[int, tuple[float, bytes]] = {}
        while len(seen) < n:
            message = await next_raw(ws)
            seen[orjson.loads(message)["data"]["u"]] = (time.monotonic(), message)
        return seen

    async with connect(sim.ws_url("linear")) as a, connect(sim.ws_url("linear")) as b:
        await subscribed(a, TOPIC)
        b_id, _ = await subscribed(b, TOPIC)
        assert sim.apply_fault(FaultRequest(FaultKind.DELAY, conn_id=b_id, seconds=0.3)) == 1
        got_a, got_b = await asyncio.gather(read(a, 40), read(b, 20))
        us = sorted(got_b)
        assert us == list(range(us[0], us[0] + 20))  # late, not lost, in order
        common = set(got_a) & set(got_b)
        assert len(common) >= 5
        for u in common:
            assert got_a[u][1] == got_b[u][1]  # the same bytes for the same u
            assert got_b[u][0] - got_a[u][0] > 0.2  # and 0.3 s later on the delayed one
        assert sim.apply_fault(FaultRequest(FaultKind.CLEAR)) >= 0

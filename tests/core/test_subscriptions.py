"""Pure tests of mdgw.core.subscriptions: what one connection asks Bybit for, and when."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core.bybit_control import Control, FrameKind, decode_control
from mdgw.core.subscriptions import (
    ResyncDecision,
    Subscriptions,
    TopicState,
)
from mdgw.testing.examples import examples


def req(raw: bytes) -> dict[str, object]:
    obj = orjson.loads(raw)
    assert isinstance(obj, dict)
    return obj


def args(raw: bytes) -> list[str]:
    value = req(raw)["args"]
    assert isinstance(value, list)
    return value


def ack(raw: bytes, op: str | None = None) -> Control:
    r = req(raw)
    return Control(FrameKind.ACK, op or str(r["op"]), "", str(r["req_id"]), "c")


def error(ret_msg: str, req_id: str = "", op: str = "subscribe") -> Control:
    frame = {"success": False, "ret_msg": ret_msg, "conn_id": "c", "op": op}
    if req_id:
        frame["req_id"] = req_id
    return decode_control(orjson.dumps(frame))


SPOT_TOPICS = [f"orderbook.50.SYM{i}USDT" for i in range(23)]


# ------------------------------------------------------------------------- connect


def test_connect_subscribes_everything_in_spot_sized_batches() -> None:
    subs = Subscriptions("spot", SPOT_TOPICS)
    requests = subs.on_connect(0.0)
    assert [len(args(r)) for r in requests] == [10, 10, 3]
    assert [t for r in requests for t in args(r)] == SPOT_TOPICS
    assert all(req(r)["op"] == "subscribe" for r in requests)
    assert len({req(r)["req_id"] for r in requests}) == 3
    assert subs.topics_in(TopicState.SUBSCRIBING) == tuple(SPOT_TOPICS)


def test_acks_mark_topics_subscribed_by_req_id() -> None:
    subs = Subscriptions("spot", SPOT_TOPICS)
    requests = subs.on_connect(0.0)
    outcome = subs.on_control(ack(requests[1]), 0.1)
    assert outcome.matched and outcome.subscribed == tuple(SPOT_TOPICS[10:20])
    assert subs.state(SPOT_TOPICS[10]) is TopicState.SUBSCRIBED
    assert subs.state(SPOT_TOPICS[0]) is TopicState.SUBSCRIBING
    assert subs.pending_requests == 2


def test_ack_without_req_id_answers_the_oldest_request_of_its_op() -> None:
    subs = Subscriptions("linear", ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"])
    subs.on_connect(0.0)
    outcome = subs.on_control(Control(FrameKind.ACK, "subscribe", "", "", "c"), 0.1)
    assert outcome.subscribed == ("orderbook.50.BTCUSDT", "publicTrade.BTCUSDT")


def test_ack_for_an_unknown_req_id_changes_nothing() -> None:
    subs = Subscriptions("linear", ["orderbook.50.BTCUSDT"])
    subs.on_connect(0.0)
    outcome = subs.on_control(Control(FrameKind.ACK, "subscribe", "", "nope", "c"), 0.1)
    assert not outcome.matched
    assert subs.state("orderbook.50.BTCUSDT") is TopicState.SUBSCRIBING


def test_nothing_is_sent_while_disconnected() -> None:
    subs = Subscriptions("linear", ["orderbook.50.BTCUSDT"])
    assert subs.request_resync("orderbook.50.BTCUSDT", 0.0) == (ResyncDecision.PENDING, [])
    assert subs.poll(100.0).requests == []


def test_reconnect_plan_resubscribes_all_but_refused() -> None:
    topics = ["orderbook.50.BTCUSDT", "orderbook.50.NOPE", "publicTrade.BTCUSDT"]
    subs = Subscriptions("linear", topics)
    first = subs.on_connect(0.0)
    subs.on_control(error("error:handler not found,topic:orderbook.50.NOPE", "0.0"), 0.1)
    assert subs.refused == ("orderbook.50.NOPE",)
    subs.on_disconnect()
    assert subs.topics_in(TopicState.IDLE) == ("orderbook.50.BTCUSDT", "publicTrade.BTCUSDT")
    second = subs.on_connect(1.0)
    assert [t for r in second for t in args(r)] == ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
    assert req(second[0])["req_id"] != req(first[0])["req_id"]
    assert subs.refused == ("orderbook.50.NOPE",)


# -------------------------------------------------------------------------- errors


def test_named_refusal_refuses_that_topic_and_retries_the_rest_of_the_batch() -> None:
    topics = ["orderbook.50.BTCUSDT", "orderbook.50.NOPE", "publicTrade.BTCUSDT"]
    subs = Subscriptions("linear", topics)
    subs.on_connect(0.0)
    outcome = subs.on_control(
        error("error:handler not found,topic:orderbook.50.NOPE", req_id="0.0"), 0.1
    )
    assert outcome.refused == ("orderbook.50.NOPE",)
    assert outcome.retried == ("orderbook.50.BTCUSDT", "publicTrade.BTCUSDT")
    assert [args(r) for r in outcome.requests] == [["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]]
    assert subs.state("orderbook.50.NOPE") is TopicState.REFUSED


def test_spot_invalid_symbol_without_req_id_is_attributed_by_topic() -> None:
    subs = Subscriptions("spot", SPOT_TOPICS)
    subs.on_connect(0.0)
    culprit = SPOT_TOPICS[15]
    outcome = subs.on_control(error(f"Invalid symbol :[{culprit}]"), 0.1)
    assert outcome.refused == (culprit,)
    assert outcome.req_id == "0.1"  # the second batch, which held it
    assert set(outcome.retried) == set(SPOT_TOPICS[10:20]) - {culprit}
    # The first and last batches are untouched.
    assert subs.state(SPOT_TOPICS[0]) is TopicState.SUBSCRIBING
    assert subs.pending_requests == 3  # two old ones and the retry


def test_unnamed_error_without_req_id_refuses_the_oldest_pending_request() -> None:
    subs = Subscriptions("spot", SPOT_TOPICS)
    subs.on_connect(0.0)
    outcome = subs.on_control(error("args size >10"), 0.1)
    assert outcome.refused == tuple(SPOT_TOPICS[:10])
    assert outcome.retried == () and outcome.requests == []
    subs.on_disconnect()
    again = subs.on_connect(1.0)
    assert [t for r in again for t in args(r)] == SPOT_TOPICS[10:]


def test_already_subscribed_keeps_the_topic_and_retries_the_others() -> None:
    topics = ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
    subs = Subscriptions("linear", topics)
    subs.on_connect(0.0)
    outcome = subs.on_control(
        error("error:already subscribed,topic:publicTrade.BTCUSDT", req_id="0.0"), 0.1
    )
    assert outcome.refused == ()
    assert outcome.subscribed == ("publicTrade.BTCUSDT",)
    assert [args(r) for r in outcome.requests] == [["orderbook.50.BTCUSDT"]]


def test_error_with_nothing_pending_is_unmatched() -> None:
    subs = Subscriptions("linear", ["orderbook.50.BTCUSDT"])
    subs.on_connect(0.0)
    subs.on_control(Control(FrameKind.ACK, "subscribe", "", "0.0", "c"), 0.1)
    outcome = subs.on_control(error("error:whatever"), 0.2)
    assert not outcome.matched and outcome.refused == ()
    assert subs.state("orderbook.50.BTCUSDT") is TopicState.SUBSCRIBED


def test_a_refused_topic_is_never_requested_again() -> None:
    subs = Subscriptions("linear", ["orderbook.50.NOPE"])
    subs.on_connect(0.0)
    subs.on_control(error("error:handler not found,topic:orderbook.50.NOPE", "0.0"), 0.1)
    for i in range(3):
        subs.on_disconnect()
        assert subs.on_connect(float(i)) == []
    assert subs.request_resync("orderbook.50.NOPE", 5.0) == (ResyncDecision.REFUSED, [])


# -------------------------------------------------------------------------- resync


def subscribed(category: str, topics: list[str]) -> Subscriptions:
    subs = Subscriptions(category, topics)
    for r in subs.on_connect(0.0):
        subs.on_control(ack(r), 0.0)
    assert subs.topics_in(TopicState.SUBSCRIBED) == tuple(topics)
    return subs


def test_resync_is_unsubscribe_then_subscribe_after_the_unsubscribe_ack() -> None:
    topic = "orderbook.50.BTCUSDT"
    subs = subscribed("linear", [topic, "publicTrade.BTCUSDT"])
    decision, requests = subs.request_resync(topic, 10.0)
    assert decision is ResyncDecision.STARTED
    assert [(req(r)["op"], args(r)) for r in requests] == [("unsubscribe", [topic])]
    assert subs.state(topic) is TopicState.UNSUBSCRIBING
    outcome = subs.on_control(ack(requests[0]), 10.1)
    assert outcome.resubscribed == (topic,)
    assert [(req(r)["op"], args(r)) for r in outcome.requests] == [("subscribe", [topic])]
    assert subs.state(topic) is TopicState.SUBSCRIBING
    subs.on_control(ack(outcome.requests[0]), 10.2)
    assert subs.state(topic) is TopicState.SUBSCRIBED
    assert subs.resyncs_in_flight == ()


def test_resync_subscribes_after_the_wait_when_the_unsubscribe_goes_unanswered() -> None:
    topic = "orderbook.50.BTCUSDT"
    subs = subscribed("linear", [topic])
    _, requests = subs.request_resync(topic, 10.0)
    assert subs.next_deadline() == pytest.approx(12.0)
    assert subs.poll(11.9).requests == []
    outcome = subs.poll(12.0)
    assert outcome.resubscribed == (topic,)
    assert [(req(r)["op"], args(r)) for r in outcome.requests] == [("subscribe", [topic])]
    # The late unsubscribe ack must not start a second subscribe.
    late = subs.on_control(ack(requests[0]), 12.5)
    assert late.requests == [] and subs.state(topic) is TopicState.SUBSCRIBING


def test_one_resync_in_flight_per_topic() -> None:
    topic = "orderbook.50.BTCUSDT"
    subs = subscribed("linear", [topic])
    assert subs.request_resync(topic, 1.0)[0] is ResyncDecision.STARTED
    assert subs.request_resync(topic, 1.1) == (ResyncDecision.IN_FLIGHT, [])
    _, requests = subs.request_resync(topic, 1.2)
    assert requests == []


def test_resync_of_a_topic_not_owned_or_not_yet_subscribed() -> None:
    subs = Subscriptions("linear", ["orderbook.50.BTCUSDT"])
    subs.on_connect(0.0)
    assert subs.request_resync("orderbook.50.ETHUSDT", 0.0) == (ResyncDecision.NOT_OWNED, [])
    # Subscribe unanswered: the snapshot is already on its way.
    assert subs.request_resync("orderbook.50.BTCUSDT", 0.0) == (ResyncDecision.PENDING, [])


def test_failed_unsubscribe_still_resubscribes_and_refuses_nothing() -> None:
    topic = "orderbook.50.BTCUSDT"
    subs = subscribed("linear", [topic])
    _, requests = subs.request_resync(topic, 1.0)
    outcome = subs.on_control(
        error("error:not subscribed", str(req(requests[0])["req_id"]), op="unsubscribe"), 1.1
    )
    assert outcome.refused == ()
    assert [args(r) for r in outcome.requests] == [[topic]]


def test_disconnect_cancels_resyncs() -> None:
    topic = "orderbook.50.BTCUSDT"
    subs = subscribed("linear", [topic])
    subs.request_resync(topic, 1.0)
    subs.on_disconnect()
    assert subs.resyncs_in_flight == ()
    assert subs.next_deadline() is None
    assert [args(r) for r in subs.on_connect(2.0)] == [[topic]]


def test_unanswered_subscribe_is_assumed_done_after_the_ack_timeout() -> None:
    subs = Subscriptions("linear", ["orderbook.50.BTCUSDT"], ack_timeout=5.0)
    subs.on_connect(0.0)
    assert subs.next_deadline() == pytest.approx(5.0)
    outcome = subs.poll(5.0)
    assert outcome.unanswered == ("orderbook.50.BTCUSDT",) and outcome.requests == []
    assert subs.state("orderbook.50.BTCUSDT") is TopicState.SUBSCRIBED
    assert subs.pending_requests == 0


def test_constructor_rejects_duplicates_and_unknown_categories() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Subscriptions("linear", ["a", "a"])
    with pytest.raises(ValueError, match="category"):
        Subscriptions("spread", ["a"])


# ---------------------------------------------------------------- generated inputs

TOPICS = [f"orderbook.50.S{i}" for i in range(14)]
_event = st.one_of(
    st.tuples(st.just("ack"), st.integers(0, 30)),
    st.tuples(st.just("error_named"), st.integers(0, 30), st.sampled_from(TOPICS)),
    st.tuples(st.just("error_bare"), st.integers(0, 30)),
    st.tuples(st.just("resync"), st.sampled_from(TOPICS)),
    st.tuples(st.just("poll"), st.floats(0, 15)),
    st.tuples(st.just("reconnect")),
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(_event, max_size=40))
def test_no_topic_is_ever_requested_twice_on_one_websocket(events: list[tuple[Any, ...]]) -> None:
    """Whatever Bybit answers: a subscribe never names a topic subscribed or pending on
    the websocket (Bybit would reject the whole batch), and refused topics never return."""
    subs = Subscriptions("spot", TOPICS)
    now = 0.0
    live: set[str] = set()  # what Bybit holds or has been asked for on this websocket
    refused: set[str] = set()
    sent: list[bytes] = []

    def send(requests: list[bytes]) -> None:
        for raw in requests:
            topics = args(raw)
            assert len(topics) <= 10
            if req(raw)["op"] == "subscribe":
                assert not live & set(topics), "topic requested twice"
                assert not refused & set(topics), "refused topic requested again"
                live.update(topics)
            else:
                live.difference_update(topics)
            sent.append(raw)

    def answer(control: Control) -> None:
        out = subs.on_control(control, now)
        if out.matched and out.op == "subscribe" and control.kind is FrameKind.ERROR:
            live.difference_update(out.topics)  # Bybit rejected the whole request
            live.update(out.subscribed)
        refused.update(out.refused)
        send(out.requests)

    send(subs.on_connect(now))
    for event in events:
        now += 0.5
        kind = event[0]
        if kind == "ack" and sent:
            answer(ack(sent[event[1] % len(sent)]))
        elif kind == "error_named" and sent:
            raw = sent[event[1] % len(sent)]
            answer(error(f"error:handler not found,topic:{event[2]}", str(req(raw)["req_id"])))
        elif kind == "error_bare":
            answer(error("args size >10"))
        elif kind == "resync":
            send(subs.request_resync(event[1], now)[1])
        elif kind == "poll":
            now += event[1]
            send(subs.poll(now).requests)
        elif kind == "reconnect":
            subs.on_disconnect()
            live.clear()
            sent.clear()
            send(subs.on_connect(now))
        assert set(subs.refused) == refused
        assert not refused & live


def test_option_command_resp_acks_are_matched_by_their_topics() -> None:
    topics = ["orderbook.25.BTC-27DEC26-100000-C", "publicTrade.BTC"]
    subs = Subscriptions("option", topics)
    subs.on_connect(0.0)
    frame = {
        "success": True,
        "conn_id": "c",
        "data": {"failTopics": [], "successTopics": topics},
        "type": "COMMAND_RESP",
    }
    outcome = subs.on_control(decode_control(orjson.dumps(frame)), 0.1)
    assert outcome.matched and outcome.subscribed == tuple(topics)
    _, requests = subs.request_resync(topics[0], 0.2)
    assert [req(r)["op"] for r in requests] == ["unsubscribe"]
    frame["data"] = {"failTopics": [], "successTopics": [topics[0]]}
    outcome = subs.on_control(decode_control(orjson.dumps(frame)), 0.3)
    assert outcome.op == "unsubscribe" and outcome.resubscribed == (topics[0],)
    refused = {
        "success": False,
        "ret_msg": "",
        "conn_id": "c",
        "data": {"failTopics": [topics[0]], "successTopics": []},
        "type": "COMMAND_RESP",
    }
    outcome = subs.on_control(decode_control(orjson.dumps(refused)), 0.4)
    assert outcome.refused == (topics[0],)

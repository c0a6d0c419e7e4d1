"""mdgw.core.bybit_control: classification, acks/errors/pongs, request building."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import bybit, bybit_control
from mdgw.core.bybit_control import Control, FrameKind, classify, decode_control
from mdgw.core.errors import ParseError
from mdgw.testing import oracles
from mdgw.testing.examples import examples

LINEAR_DELTA = (
    b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1786310818229,'
    b'"data":{"s":"BTCUSDT","b":[["65114.20","0"],["65113.90","1.5"]],"a":[],'
    b'"u":15076953,"seq":753843954900},"cts":1786310818227}'
)


def _containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=6), children, max_size=4
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    _containers,
    max_leaves=20,
)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (LINEAR_DELTA, FrameKind.DATA),
        (b'{"topic":"orderbook.50.X", broken', FrameKind.DATA),  # forwarded; builder attributes it
        (b'{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}', FrameKind.PONG),
        (b'{"success":true,"ret_msg":"pong","conn_id":"c","op":"pong"}', FrameKind.PONG),
        (b'{"args":["1672916271846"],"op":"pong"}', FrameKind.PONG),
        (b'{"success":true,"ret_msg":"subscribe","conn_id":"c","op":"subscribe"}', FrameKind.ACK),
        (
            b'{"success":true,"ret_msg":"","conn_id":"c","req_id":"","op":"subscribe"}',
            FrameKind.ACK,
        ),
        (
            b'{"success":false,"ret_msg":"args size >10","conn_id":"c","op":"subscribe"}',
            FrameKind.ERROR,
        ),
        (b"not json", FrameKind.UNKNOWN),
        (b"[1,2]", FrameKind.UNKNOWN),
        (b'{"hello":1}', FrameKind.UNKNOWN),
    ],
)
def test_classify(frame: bytes, kind: FrameKind) -> None:
    assert bybit_control.classify(frame) is kind


def test_error_texts_name_the_failed_topics() -> None:
    derivatives = bybit_control.decode_control(
        b'{"success":false,"ret_msg":"error:already subscribed,topic:publicTrade.BTCUSDT",'
        b'"conn_id":"c","req_id":"2","op":"subscribe"}'
    )
    assert derivatives.kind is FrameKind.ERROR
    assert derivatives.failed_topics == ("publicTrade.BTCUSDT",)
    assert derivatives.req_id == "2"
    spot = bybit_control.decode_control(
        b'{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.NOSUCHSYM]","conn_id":"c",'
        b'"op":"subscribe"}'
    )
    assert spot.failed_topics == ("orderbook.50.NOSUCHSYM",)
    assert bybit_control.failed_topics("args size >10") == ()


def test_subscribe_requests_respect_spot_limit() -> None:
    topics = [bybit.orderbook_topic(50, f"S{i}USDT") for i in range(23)]
    spot = [orjson.loads(r) for r in bybit_control.subscribe_requests("spot", topics, "s")]
    assert [len(r["args"]) for r in spot] == [10, 10, 3]
    assert [r["req_id"] for r in spot] == ["s0", "s1", "s2"]
    assert sum((r["args"] for r in spot), []) == topics
    linear = [orjson.loads(r) for r in bybit_control.subscribe_requests("linear", topics, "l")]
    assert len(linear) == 1
    assert linear[0] == {"req_id": "l0", "op": "subscribe", "args": topics}
    unsub = orjson.loads(bybit_control.unsubscribe_requests("inverse", topics[:1], "u")[0])
    assert unsub["op"] == "unsubscribe"


def test_ping_request() -> None:
    assert orjson.loads(bybit_control.ping_request()) == {"op": "ping"}
    assert orjson.loads(bybit_control.ping_request("7")) == {"req_id": "7", "op": "ping"}


@settings(max_examples=examples(400), deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["op", "ret_msg", "req_id", "conn_id", "success", "type", "data", "topic", "args"]
        ),
        json_values
        | st.sampled_from(["pong", "subscribe", "COMMAND_RESP", True, False])
        | st.fixed_dictionaries({"failTopics": st.lists(json_values, max_size=3)}),
        max_size=6,
    )
    | json_values
)
def test_control_decoder_agrees_with_the_reference(obj: object) -> None:
    raw = orjson.dumps(obj)

    def outcome(decode: Callable[[bytes], Control]) -> Control | str:
        try:
            return decode(raw)
        except ParseError:
            return "error"

    assert outcome(bybit_control.decode_control) == outcome(oracles.decode_control)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"op":"pong","ret_msg":"\xff"}',
        b'{"success":false,"ret_msg":"error:handler not found,topic:\xc3","op":"subscribe"}',
    ],
)
def test_invalid_utf8_in_a_control_frame_is_a_parse_error_and_classifies_unknown(
    frame: bytes,
) -> None:
    with pytest.raises(ParseError, match="invalid UTF-8"):
        decode_control(frame)
    assert classify(frame) is FrameKind.UNKNOWN

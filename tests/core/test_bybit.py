"""mdgw.core.bybit: classification, decoding, request building; fuzzed decoders."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import bybit
from mdgw.core.bybit import BookFrame, FrameKind, TradeFrame
from mdgw.core.errors import ParseError

LINEAR_DELTA = (
    b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1786310818229,'
    b'"data":{"s":"BTCUSDT","b":[["65114.20","0"],["65113.90","1.5"]],"a":[],'
    b'"u":15076953,"seq":753843954900},"cts":1786310818227}'
)
SPOT_TRADES = (
    b'{"topic":"publicTrade.ETHUSDT","ts":1786310821917,"type":"snapshot","data":['
    b'{"i":"2280000001739247417","T":1786310821917,"p":"1923.28","v":"0.04537","S":"Sell",'
    b'"seq":178477362706,"s":"ETHUSDT","BT":false,"RPI":false},'
    b'{"i":"2280000001739247418","T":1786310821918,"p":"1923.29","v":"1","S":"Buy",'
    b'"seq":178477362707,"s":"ETHUSDT","BT":true,"RPI":false}]}'
)


def test_decode_delta_keeps_exact_strings_and_keys() -> None:
    frame = bybit.decode_frame(LINEAR_DELTA)
    assert isinstance(frame, BookFrame)
    assert (frame.topic, frame.symbol, frame.depth, frame.snapshot) == (
        "orderbook.50.BTCUSDT",
        "BTCUSDT",
        50,
        False,
    )
    assert (frame.u, frame.seq, frame.ts, frame.cts) == (
        15076953,
        753843954900,
        1786310818229,
        1786310818227,
    )
    assert frame.bids == [(65114.2, "65114.20", "0", 0.0), (65113.9, "65113.90", "1.5", 1.5)]
    assert frame.asks == []


def test_decode_trades_in_order_with_taker_side() -> None:
    frame = bybit.decode_frame(SPOT_TRADES)
    assert isinstance(frame, TradeFrame)
    assert [(t.id, t.price, t.size, t.side, t.ts, t.block) for t in frame.trades] == [
        ("2280000001739247417", "1923.28", "0.04537", "sell", 1786310821917, False),
        ("2280000001739247418", "1923.29", "1", "buy", 1786310821918, True),
    ]


def test_frame_without_cts_or_seq_decodes_with_zero() -> None:
    raw = {
        "topic": "orderbook.1.BTCUSDT",
        "type": "snapshot",
        "ts": 1,
        "data": {"s": "BTCUSDT", "b": [["1", "2"]], "a": [["3", "4"]], "u": 7},
    }
    frame = bybit.decode_frame(orjson.dumps(raw))
    assert isinstance(frame, BookFrame)
    assert (frame.cts, frame.seq, frame.u) == (0, 0, 7)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(type="partial"), "unknown book frame type"),
        (lambda d: d["data"].update(u="5"), "data.u"),
        (lambda d: d["data"].update(u=-1), "data.u"),
        (lambda d: d["data"].update(u=True), "data.u"),
        (lambda d: d["data"].update(s="ETHUSDT"), "does not match"),
        (lambda d: d["data"].update(b=[["65000", 1]]), "bad level"),
        (lambda d: d["data"].update(b=[["65000"]]), "bad level"),
        (lambda d: d["data"].update(b={"65000": "1"}), "not a list"),
        (lambda d: d["data"].update(b=[["nan", "1"]]), "bad level"),
        (lambda d: d["data"].update(b=[["1e5", "1"]]), "bad level"),
        (lambda d: d["data"].update(b=[["-1", "1"]]), "bad level"),
        (lambda d: d["data"].update(b=[["0", "1"]]), "bad level"),
        (lambda d: d["data"].update(b=[["1", "-1"]]), "bad level"),
        (lambda d: d["data"].update(b=[["1", "9" * 400]]), "bad level"),
        (lambda d: d["data"].update(b=[["1234567890.1234567", "1"]]), "too many digits"),
        (lambda d: d.update(data=[]), "not an object"),
        (lambda d: d.update(ts=None), "ts"),
    ],
)
def test_malformed_book_frames_raise_parse_error_with_topic(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    raw = orjson.loads(LINEAR_DELTA)
    mutate(raw)
    with pytest.raises(ParseError, match=reason) as info:
        bybit.decode_frame(orjson.dumps(raw))
    assert info.value.topic == "orderbook.50.BTCUSDT"


def test_truncated_frame_is_attributed_to_its_topic() -> None:
    with pytest.raises(ParseError) as info:
        bybit.decode_frame(LINEAR_DELTA[:60])
    assert info.value.topic == "orderbook.50.BTCUSDT"


def test_unsupported_topic() -> None:
    with pytest.raises(ParseError, match="unsupported topic"):
        bybit.decode_frame(b'{"topic":"tickers.BTCUSDT","type":"snapshot","data":{}}')


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
    assert bybit.classify(frame) is kind


def test_error_texts_name_the_failed_topics() -> None:
    derivatives = bybit.decode_control(
        b'{"success":false,"ret_msg":"error:already subscribed,topic:publicTrade.BTCUSDT",'
        b'"conn_id":"c","req_id":"2","op":"subscribe"}'
    )
    assert derivatives.kind is FrameKind.ERROR
    assert derivatives.failed_topics == ("publicTrade.BTCUSDT",)
    assert derivatives.req_id == "2"
    spot = bybit.decode_control(
        b'{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.NOSUCHSYM]","conn_id":"c",'
        b'"op":"subscribe"}'
    )
    assert spot.failed_topics == ("orderbook.50.NOSUCHSYM",)
    assert bybit.failed_topics("args size >10") == ()


def test_subscribe_requests_respect_spot_limit() -> None:
    topics = [bybit.orderbook_topic(50, f"S{i}USDT") for i in range(23)]
    spot = [orjson.loads(r) for r in bybit.subscribe_requests("spot", topics, "s")]
    assert [len(r["args"]) for r in spot] == [10, 10, 3]
    assert [r["req_id"] for r in spot] == ["s0", "s1", "s2"]
    assert sum((r["args"] for r in spot), []) == topics
    linear = [orjson.loads(r) for r in bybit.subscribe_requests("linear", topics, "l")]
    assert len(linear) == 1
    assert linear[0] == {"req_id": "l0", "op": "subscribe", "args": topics}
    unsub = orjson.loads(bybit.unsubscribe_requests("inverse", topics[:1], "u")[0])
    assert unsub["op"] == "unsubscribe"


def test_plan_connections_stays_under_the_args_limit() -> None:
    topics = [bybit.orderbook_topic(1000, f"SYM{i:05d}USDT") for i in range(2000)]
    groups = bybit.plan_connections(topics)
    assert [t for g in groups for t in g] == topics
    assert all(bybit.args_chars(g) <= bybit.MAX_ARGS_CHARS_PER_CONNECTION for g in groups)
    assert len(orjson.dumps(groups[0])) <= bybit.MAX_ARGS_CHARS_PER_CONNECTION
    # Packing is tight: adding the next topic to a full group would exceed the limit.
    assert bybit.args_chars([*groups[0], groups[1][0]]) > bybit.MAX_ARGS_CHARS_PER_CONNECTION


def test_ping_request() -> None:
    assert orjson.loads(bybit.ping_request()) == {"op": "ping"}
    assert orjson.loads(bybit.ping_request("7")) == {"req_id": "7", "op": "ping"}


# ------------------------------------------------------------------------------ fuzzing

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    for decoder in (bybit.decode_frame, bybit.decode_control):
        try:
            decoder(data)
        except ParseError:
            pass
    bybit.classify(data)
    bybit.topic_of(data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(
        ["orderbook.50.BTCUSDT", "orderbook.1.X", "publicTrade.BTCUSDT", "orderbook.x"]
    ),
    st.sampled_from(["snapshot", "delta", 1, None]),
    json_values,
    json_values,
)
def test_mangled_frames_raise_only_parse_error(
    topic: str, kind: object, data: object, extra: object
) -> None:
    for obj in (
        {"topic": topic, "type": kind, "ts": 1, "data": data},
        {
            "topic": topic,
            "type": kind,
            "ts": extra,
            "data": {"s": "BTCUSDT", "b": data, "a": extra, "u": 1},
        },
        {"topic": topic, "type": "snapshot", "ts": 1, "data": [data, extra]},
    ):
        raw = orjson.dumps(obj)
        for cut in (len(raw), len(raw) // 2):
            try:
                bybit.decode_frame(raw[:cut])
            except ParseError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=5))
def test_level_strings_either_decode_exactly_or_raise(levels: list[tuple[str, str]]) -> None:
    raw = orjson.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": "delta",
            "ts": 1,
            "data": {"s": "BTCUSDT", "b": [list(lv) for lv in levels], "a": [], "u": 2},
        }
    )
    try:
        frame = bybit.decode_frame(raw)
    except ParseError:
        return
    assert isinstance(frame, BookFrame)
    for (price, size), (key, p, s, q) in zip(levels, frame.bids, strict=True):
        assert (p, s) == (price, size)
        assert key == float(price) > 0
        assert q == float(size) >= 0


@pytest.mark.parametrize(
    "topic",
    [
        "orderbook.0.BTCUSDT",
        "orderbook.50.BTC/USDT",
        "orderbook.50." + "X" * 65,
        "publicTrade.BTC USDT",
    ],
)
def test_topics_no_gateway_topic_could_carry_are_malformed(topic: str) -> None:
    if topic.startswith("orderbook."):
        symbol = topic.split(".", 2)[2]
        data: object = {"s": symbol, "b": [], "a": [], "u": 1}
    else:
        symbol = topic.split(".", 1)[1]
        data = [{"T": 1, "s": symbol, "S": "Buy", "v": "1", "p": "1", "i": "x"}]
    raw = orjson.dumps({"topic": topic, "type": "snapshot", "ts": 1, "data": data})
    with pytest.raises(ParseError, match="malformed"):
        bybit.decode_frame(raw)


def _reference(raw: bytes) -> object:
    """What the reference decoder makes of a frame: the frame, or the error's (reason, topic)."""
    try:
        return bybit._decode_frame_checked(raw)
    except ParseError as exc:
        return ("error", exc.reason, exc.topic)


def _decoded(raw: bytes) -> object:
    try:
        return bybit.decode_frame(raw)
    except ParseError as exc:
        return ("error", exc.reason, exc.topic)


numbers = st.one_of(
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["0", "0.0", ".5", "5.", "1e5", "nan", "-1", " 1", "", ".", "1.2.3"]),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.none(),
)
ints = st.one_of(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.sampled_from([-1, 2**63, 2**64 - 1, 1.0, True, "1", None]),
)


@settings(max_examples=600, deadline=None)
@given(
    topic=st.sampled_from(
        ["orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT", "orderbook.0.BTCUSDT", "orderbook.50.X"]
    ),
    kind=st.sampled_from(["snapshot", "delta", "Delta", 1, None]),
    symbol=st.sampled_from(["BTCUSDT", "X", 7]),
    bids=st.lists(st.lists(numbers, min_size=1, max_size=3), max_size=4),
    asks=st.lists(st.tuples(numbers, numbers).map(list), max_size=4),
    u=ints,
    seq=ints,
    ts=ints,
    cts=ints,
    drop=st.sets(st.sampled_from(["type", "ts", "data", "cts", "s", "u", "seq", "b", "a"])),
    extra=json_values,
)
def test_fast_book_path_decodes_exactly_as_the_reference(
    *,
    topic: str,
    kind: object,
    symbol: object,
    bids: list[object],
    asks: list[object],
    u: object,
    seq: object,
    ts: object,
    cts: object,
    drop: set[str],
    extra: object,
) -> None:
    """Every orderbook frame gives the same BookFrame, or the same ParseError, either way."""
    data = {"s": symbol, "b": bids, "a": asks, "u": u, "seq": seq, "x": extra}
    obj = {"topic": topic, "type": kind, "ts": ts, "data": data, "cts": cts, "id": extra}
    for key in drop:
        obj.pop(key, None)
        data.pop(key, None)
    raw = orjson.dumps(obj)
    assert raw.startswith(b'{"topic":"orderbook.')  # the fast path's door
    assert _decoded(raw) == _reference(raw)
    fast = bybit._decode_book_fast(raw)
    assert fast is None or fast == bybit._decode_frame_checked(raw)


def test_fast_book_path_takes_well_formed_frames() -> None:
    """The fast path is not silently declining everything (and handing it to the reference)."""
    raw = orjson.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": "delta",
            "ts": 1,
            "data": {"s": "BTCUSDT", "b": [["65000.5", "0"]], "a": [], "u": 7, "seq": 9},
            "cts": 2,
        }
    )
    fast = bybit._decode_book_fast(raw)
    assert fast is not None and fast == bybit.decode_frame(raw)
    assert fast.bids == [(65000.5, "65000.5", "0", 0.0)]


@pytest.mark.parametrize("number", ["18446744073709551616", "1e400", "-0", "1.0"])
def test_fast_book_path_defers_numbers_orjson_sees_differently(number: str) -> None:
    raw = (
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,'
        b'"data":{"s":"BTCUSDT","b":[],"a":[],"u":' + number.encode() + b"}}"
    )
    assert _decoded(raw) == _reference(raw)


def test_option_connections_hold_at_most_2000_topics() -> None:
    from mdgw.core.bybit import MAX_ARGS_PER_CONNECTION, plan_connections

    topics = [f"orderbook.25.BTC-27DEC26-{i}-C" for i in range(4500)]
    # (the 21,000-character limit binds first on real topics; lift it to see this one)
    groups = plan_connections(topics, 10**9, max_args=MAX_ARGS_PER_CONNECTION["option"])
    assert [len(g) for g in groups] == [2000, 2000, 500]
    assert [t for g in groups for t in g] == topics

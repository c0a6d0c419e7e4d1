"""mdgw.core.bybit: decoding data frames, against the reference decoder; fuzzed."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import bybit, bybit_control
from mdgw.core.bybit import BookFrame, TradeFrame
from mdgw.core.errors import ParseError
from mdgw.testing import oracles
from mdgw.testing.examples import examples

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
        # 16 significant digits with no dot: 2**53 + 1 is no double, it would merge with 2**53.
        (lambda d: d["data"].update(b=[["9007199254740993", "1"]]), "too many digits"),
        (lambda d: d["data"].update(a=[["1234567890123456", "1"]]), "too many digits"),
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


# ------------------------------------------------------------------------------ fuzzing


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


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    for decoder in (bybit.decode_frame, bybit_control.decode_control):
        try:
            decoder(data)
        except ParseError:
            pass
    bybit_control.classify(data)
    bybit.topic_of(data)


@settings(max_examples=examples(400), deadline=None)
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


@settings(max_examples=examples(300), deadline=None)
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
    """What the reference decoder makes of a frame: the frame, or ("error", topic)."""
    try:
        return oracles.decode_frame(raw)
    except ParseError as exc:
        return ("error", exc.topic)


def _decoded(raw: bytes) -> object:
    try:
        return bybit.decode_frame(raw)
    except ParseError as exc:
        return ("error", exc.topic)


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


@settings(max_examples=examples(600), deadline=None)
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
    topic_last=st.booleans(),
)
def test_book_decoder_agrees_with_the_reference(
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
    topic_last: bool,
) -> None:
    """Every orderbook frame gives the same BookFrame, or a ParseError for the same topic."""
    data = {"s": symbol, "b": bids, "a": asks, "u": u, "seq": seq, "x": extra}
    obj = {"topic": topic, "type": kind, "ts": ts, "data": data, "cts": cts, "id": extra}
    for key in drop:
        obj.pop(key, None)
        data.pop(key, None)
    if topic_last:  # not Bybit's order: the decoder finds the topic by parsing
        obj["topic"] = obj.pop("topic")
    assert _decoded(orjson.dumps(obj)) == _reference(orjson.dumps(obj))


@settings(max_examples=examples(400), deadline=None)
@given(
    topic=st.sampled_from(["publicTrade.BTCUSDT", "publicTrade.X", "publicTrade.", "tickers.X"]),
    items=st.lists(
        st.fixed_dictionaries(
            {
                "T": ints,
                "s": st.sampled_from(["BTCUSDT", "X", 7]),
                "S": st.sampled_from(["Buy", "Sell", "buy", None]),
                "v": numbers,
                "p": numbers,
                "i": st.sampled_from(["a1", "", 5, "x" * 129]),
            },
            optional={"BT": st.sampled_from([True, False, None, 1]), "seq": ints},
        ),
        max_size=3,
    ),
    ts=ints,
    extra=json_values,
)
def test_trade_decoder_agrees_with_the_reference(
    *, topic: str, items: list[dict[str, object]], ts: object, extra: object
) -> None:
    obj = {"topic": topic, "type": "snapshot", "ts": ts, "data": items, "x": extra}
    assert _decoded(orjson.dumps(obj)) == _reference(orjson.dumps(obj))


def test_well_formed_book_frame_decodes() -> None:
    raw = orjson.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": "delta",
            "ts": 1,
            "data": {"s": "BTCUSDT", "b": [["65000.5", "0"]], "a": [], "u": 7, "seq": 9},
            "cts": 2,
        }
    )
    frame = bybit.decode_frame(raw)
    assert isinstance(frame, BookFrame)
    assert frame == oracles.decode_frame(raw)
    assert frame.bids == [(65000.5, "65000.5", "0", 0.0)]
    assert (frame.u, frame.seq, frame.ts, frame.cts) == (7, 9, 1, 2)


@pytest.mark.parametrize("number", ["18446744073709551616", "1e400", "-0", "1.0"])
def test_numbers_orjson_sees_differently_agree_with_the_reference(number: str) -> None:
    raw = (
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,'
        b'"data":{"s":"BTCUSDT","b":[],"a":[],"u":' + number.encode() + b"}}"
    )
    assert _decoded(raw) == _reference(raw)


@settings(max_examples=examples(400), deadline=None)
@given(
    topic=st.sampled_from(["orderbook.full.BTCUSDT", "orderbook.full.X", "orderbook.full."]),
    kind=st.sampled_from(["snapshot", "delta", None]),
    symbol=st.sampled_from(["BTCUSDT", "X", 7]),
    bids=st.lists(st.tuples(numbers, numbers).map(list), max_size=3),
    u=ints,
    seq=ints,
    drop=st.sets(st.sampled_from(["type", "ts", "cts", "s", "u", "seq"])),
)
def test_full_book_decoder_agrees_with_the_reference(
    *,
    topic: str,
    kind: object,
    symbol: object,
    bids: list[object],
    u: object,
    seq: object,
    drop: set[str],
) -> None:
    """orderbook.full frames: the same FullFrame, or a ParseError for the same topic."""
    data = {"s": symbol, "b": bids, "a": [], "u": u, "seq": seq}
    obj = {"topic": topic, "type": kind, "ts": 1, "data": data, "cts": 2}
    for key in drop:
        obj.pop(key, None)
        data.pop(key, None)
    assert _decoded(orjson.dumps(obj)) == _reference(orjson.dumps(obj))


@settings(max_examples=examples(500), deadline=None)
@given(
    topic=st.sampled_from(["orderbook.rpi.BTCUSDT", "orderbook.rpi.X", "orderbook.rpi.B T"]),
    kind=st.sampled_from(["snapshot", "delta", "Delta", 1, None]),
    symbol=st.sampled_from(["BTCUSDT", "X", 7]),
    bids=st.lists(st.lists(numbers, min_size=1, max_size=4), max_size=3),
    asks=st.lists(st.tuples(numbers, numbers, numbers).map(list), max_size=3),
    u=ints,
    seq=ints,
    ts=ints,
    cts=ints,
    drop=st.sets(st.sampled_from(["type", "ts", "data", "cts", "s", "u", "seq", "b", "a"])),
    topic_last=st.booleans(),
)
def test_rpi_decoder_agrees_with_the_reference(
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
    topic_last: bool,
) -> None:
    """orderbook.rpi frames: the same RpiFrame, or a ParseError for the same topic."""
    data = {"s": symbol, "b": bids, "a": asks, "u": u, "seq": seq}
    obj = {"topic": topic, "type": kind, "ts": ts, "data": data, "cts": cts}
    for key in drop:
        obj.pop(key, None)
        data.pop(key, None)
    if topic_last:
        obj["topic"] = obj.pop("topic")
    assert _decoded(orjson.dumps(obj)) == _reference(orjson.dumps(obj))


@settings(max_examples=examples(400), deadline=None)
@given(
    topic=st.sampled_from(["publicTrade.BTC", "publicTrade.BTCUSDT"]),
    items=st.lists(
        st.fixed_dictionaries(
            {
                "T": ints,
                "s": st.sampled_from(["BTC", "BTC-27DEC26-100000-C", "ETH-1-C", "BTC-"]),
                "S": st.sampled_from(["Buy", "Sell"]),
                "v": numbers,
                "p": numbers,
                "i": st.sampled_from(["a1", "b2"]),
            },
            optional={
                "RPI": st.sampled_from([True, False, None, 1]),
                "mP": st.sampled_from(["1.5", "-2", "", "x", None, 3]),
                "iP": st.sampled_from(["1.5", "-2", ""]),
                "mIv": st.sampled_from(["0.4", "nan"]),
                "iv": st.sampled_from(["0.4", 0.4]),
                "seq": ints,
            },
        ),
        max_size=3,
    ),
)
def test_trade_fields_agree_with_the_reference(*, topic: str, items: list[object]) -> None:
    """RPI flags, option instruments on a base-coin topic and option fields."""
    obj = {"topic": topic, "type": "snapshot", "ts": 1, "data": items}
    assert _decoded(orjson.dumps(obj)) == _reference(orjson.dumps(obj))


notice_values = st.one_of(
    st.sampled_from(["", "t", "1751596902000", "x" * 1025, "-1", "1" * 20]),
    st.integers(min_value=-1, max_value=2**64 - 1),
    st.none(),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=9), max_size=3),
    st.just(["1"]),
)


@settings(max_examples=examples(500), deadline=None)
@given(
    notices=st.lists(
        st.dictionaries(
            st.sampled_from(
                (
                    *("id", "title", "state", "begin", "end", "href"),
                    *("serviceTypes", "product", "maintainType", "env"),
                )
            ),
            notice_values,
        ),
        max_size=3,
    ),
    ts=ints,
    topic_last=st.booleans(),
)
def test_system_status_decoder_agrees_with_the_reference(
    *, notices: list[object], ts: object, topic_last: bool
) -> None:
    """system.status frames: the same StatusFrame, or a ParseError for the same topic."""
    obj: dict[str, object] = {"topic": "system.status", "ts": ts, "data": notices}
    if topic_last:
        obj["topic"] = obj.pop("topic")
    assert _decoded(orjson.dumps(obj)) == _reference(orjson.dumps(obj))


def test_well_formed_rpi_status_and_option_trade_frames_decode() -> None:
    rpi = orjson.dumps(
        {
            "topic": "orderbook.rpi.BTCUSDT",
            "type": "snapshot",
            "ts": 1,
            "data": {"s": "BTCUSDT", "b": [["10", "1", "2"]], "a": [], "u": 3, "seq": 4},
        }
    )
    frame = bybit.decode_frame(rpi)
    assert isinstance(frame, bybit.RpiFrame)
    assert frame == oracles.decode_frame(rpi)
    assert frame.bids == [(10.0, "10", "1", "2", 3.0)]
    status = orjson.dumps(
        {
            "topic": "system.status",
            "ts": 5,
            "data": [{"id": "n1", "title": "t", "state": "ongoing", "begin": "7", "end": 8}],
        }
    )
    decoded = bybit.decode_frame(status)
    assert isinstance(decoded, bybit.StatusFrame)
    assert decoded == oracles.decode_frame(status)
    assert (decoded.notices[0].begin, decoded.notices[0].end) == (7, 8)
    trade = orjson.dumps(
        {
            "topic": "publicTrade.BTC",
            "ts": 1,
            "data": [
                {"T": 1, "s": "BTC-1-C", "S": "Buy", "v": "1", "p": "2", "i": "a", "RPI": True}
                | {"mP": "1", "iP": "2", "mIv": "0.3", "iv": "-0.4"}
            ],
        }
    )
    trades = bybit.decode_frame(trade)
    assert isinstance(trades, TradeFrame)
    assert trades == oracles.decode_frame(trade)
    one = trades.trades[0]
    assert (one.symbol, one.rpi, one.option) == ("BTC-1-C", True, ("1", "2", "0.3", "-0.4"))


@pytest.mark.parametrize("price", ["123456789012345", "1234567890.12345", "0.000123456789012345"])
def test_prices_of_15_significant_digits_are_kept_as_sent(price: str) -> None:
    raw = orjson.loads(LINEAR_DELTA)
    raw["data"]["b"] = [[price, "1"]]
    frame = bybit.decode_frame(orjson.dumps(raw))
    assert isinstance(frame, bybit.BookFrame)
    assert frame.bids == [(float(price), price, "1", 1.0)]

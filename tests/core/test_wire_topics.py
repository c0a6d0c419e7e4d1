"""mdgw.core.wire.topics (and the package's exports): topics, payloads, BookTemplate."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import wire
from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.errors import WireError
from mdgw.core.wire import (
    CHANNEL_FIELDS,
    CHANNELS,
    decode_payload,
    encode_status,
    encode_trade,
    parse_gateway_topic,
    subscription,
    topic,
)
from mdgw.testing.examples import examples
from mdgw.testing.oracles import encode_book
from mdgw.testing.samples import sample_bbo, sample_book

U32 = 2**32 - 1
U64 = 2**64 - 1

symbols = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


# --- topics ----------------------------------------------------------------------------------


def test_topic_has_terminator() -> None:
    assert topic("book", "inverse", "BTCUSD") == b"book.inverse.BTCUSD."
    assert topic("status", "linear", "BTC-26DEC25") == b"status.linear.BTC-26DEC25."


@pytest.mark.parametrize(
    ("channel", "category", "symbol"),
    [
        ("books", "linear", "BTCUSDT"),
        ("book", "spread", "BTCUSDT"),
        ("book", "linear", ""),
        ("book", "linear", "BTC.USDT"),
        ("book", "linear", "BTC USDT"),
        ("book", "linear", "X" * 65),
    ],
)
def test_topic_rejects(channel: str, category: str, symbol: str) -> None:
    with pytest.raises(WireError):
        topic(channel, category, symbol)


@pytest.mark.parametrize(
    ("spec", "prefix"),
    [
        ("book.inverse.BTCUSD", b"book.inverse.BTCUSD."),
        ("book.inverse.BTCUSD.", b"book.inverse.BTCUSD."),
        ("book.inverse", b"book.inverse."),
        ("book.inverse.", b"book.inverse."),
        ("book", b"book."),
        ("book.", b"book."),
        ("", b""),
    ],
)
def test_subscription(spec: str, prefix: bytes) -> None:
    assert subscription(spec) == prefix


@pytest.mark.parametrize(
    "spec",
    [
        ".",
        "books",
        "bo",
        "book.options",
        "book..BTCUSD",
        "book.inverse..",
        "book.inverse.BTC USD",
        "book.inverse.BTCUSD.extra",
        " book",
    ],
)
def test_subscription_rejects(spec: str) -> None:
    with pytest.raises(WireError):
        subscription(spec)


def test_symbol_subscription_does_not_match_longer_symbol() -> None:
    btcusd = topic("book", "inverse", "BTCUSD")
    btcusdh26 = topic("book", "inverse", "BTCUSDH26")
    exact = subscription("book.inverse.BTCUSD")
    # ZeroMQ SUB filtering is a plain byte-prefix match.
    assert btcusd.startswith(exact)
    assert not btcusdh26.startswith(exact)
    assert btcusdh26.startswith(subscription("book.inverse.BTCUSDH26"))
    for broad in ("book.inverse", "book", ""):
        assert btcusd.startswith(subscription(broad))
        assert btcusdh26.startswith(subscription(broad))
    assert not btcusd.startswith(subscription("bbo"))
    assert not btcusd.startswith(subscription("book.linear"))


@given(
    channel=st.sampled_from(CHANNELS),
    category=st.sampled_from(CATEGORIES),
    a=symbols,
    b=symbols,
)
def test_exact_subscription_matches_only_its_symbol(
    channel: str, category: str, a: str, b: str
) -> None:
    assert parse_gateway_topic(topic(channel, category, a)) == (channel, category, a)
    matches = topic(channel, category, b).startswith(subscription(f"{channel}.{category}.{a}"))
    assert matches == (a == b)


@pytest.mark.parametrize(
    "raw",
    [
        b"book.inverse.BTCUSD",
        b"book.inverse.",
        b"book.inverse.BTCUSD.X.",
        b"nope.inverse.BTCUSD.",
        b"book.spread.BTCUSD.",
        b"book.inverse.BTC$.",
        b"book.inverse.\xffBTC.",
        b"",
    ],
)
def test_parse_topic_rejects(raw: bytes) -> None:
    with pytest.raises(WireError):
        parse_gateway_topic(raw)


# --- payloads --------------------------------------------------------------------------------

COMMON = {"channel", "exchange", "category", "symbol", "seq", "pub_ns"}


def test_book_payload_fields_and_values() -> None:
    payload = orjson.loads(sample_book())
    assert set(payload) == COMMON | {"recv_ns", "u", "ts", "cts", "depth", "bids", "asks"}
    assert set(payload) == CHANNEL_FIELDS["book"]
    assert payload["channel"] == "book"
    assert payload["exchange"] == "bybit"
    assert payload["bids"] == [["65000.5", "1.2"], ["65000", "0.5"]]
    assert payload["asks"] == [["65001", "3"]]
    assert payload["seq"] == 7
    assert decode_payload(sample_book()) == payload


def test_book_accepts_other_level_sequences() -> None:
    class Levels(tuple[tuple[str, str], ...]):
        pass

    payload = orjson.loads(sample_book(bids=Levels([("1", "2")]), asks=()))
    assert payload["bids"] == [["1", "2"]]
    assert payload["asks"] == []


def test_book_rejects_unencodable_levels() -> None:
    with pytest.raises(WireError):
        sample_book(bids={"1": "2"}.items())


def test_bbo_payload_fields() -> None:
    payload = orjson.loads(sample_bbo())
    assert set(payload) == COMMON | {"recv_ns", "u", "ts", "bid", "bid_size", "ask", "ask_size"}
    assert set(payload) == CHANNEL_FIELDS["bbo"]
    assert (payload["bid"], payload["ask_size"]) == ("65000.5", "3")


def test_trade_payload_fields() -> None:
    data = encode_trade(
        "spot",
        "ETHUSDT",
        seq=1,
        pub_ns=2,
        recv_ns=1,
        trade_id="2290000000012345",
        price="3000.1",
        size="0.01",
        side="sell",
        ts=1_700_000_000_000,
        block=False,
    )
    payload = orjson.loads(data)
    assert set(payload) == COMMON | {"recv_ns", "id", "price", "size", "side", "ts", "block"}
    assert set(payload) == CHANNEL_FIELDS["trade"]
    assert payload["block"] is False
    assert payload["side"] == "sell"


def test_trade_rejects_bad_side() -> None:
    with pytest.raises(WireError):
        encode_trade(
            "spot",
            "ETHUSDT",
            seq=1,
            pub_ns=2,
            recv_ns=1,
            trade_id="1",
            price="1",
            size="1",
            side="Buy",
            ts=1,
            block=False,
        )


def test_status_payload_fields() -> None:
    without = orjson.loads(
        encode_status("inverse", "BTCUSD", seq=9, pub_ns=5, state="stale", reason="silent")
    )
    assert set(without) == COMMON | {"state", "reason"}
    assert set(without) == CHANNEL_FIELDS["status"]
    with_recv = orjson.loads(
        encode_status(
            "inverse", "BTCUSD", seq=9, pub_ns=5, state="resyncing", reason="gap", recv_ns=4
        )
    )
    assert set(with_recv) == COMMON | {"state", "reason", "recv_ns"}
    assert decode_payload(orjson.dumps(with_recv))["recv_ns"] == 4
    with pytest.raises(WireError):
        encode_status("inverse", "BTCUSD", seq=9, pub_ns=5, state="dead", reason="")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"channel": "nope"}',
        b'{"channel": ["book"]}',
        b'{"channel": "book", "exchange": "bybit"}',
        b"\xff\xfe",
    ],
)
def test_decode_payload_rejects(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_payload(data)


def test_decode_payload_rejects_unknown_category() -> None:
    payload = orjson.loads(sample_bbo())
    payload["category"] = "spread"
    with pytest.raises(WireError, match="category"):
        decode_payload(orjson.dumps(payload))


def test_decode_payload_allows_extra_fields() -> None:
    payload = orjson.loads(sample_bbo())
    payload["future_field"] = 1
    assert decode_payload(orjson.dumps(payload))["future_field"] == 1


@given(st.binary(max_size=200))
def test_decode_payload_random_bytes_raises_only_wire_error(data: bytes) -> None:
    try:
        decode_payload(data)
    except WireError:
        pass


def test_all_names_exported_exist() -> None:
    for name in wire.__all__:
        assert hasattr(wire, name), name


@settings(max_examples=examples(200), deadline=None)
@given(
    category=st.sampled_from(CATEGORIES),
    symbol=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    ints=st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=5, max_size=5),
    cts=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
    depth=st.integers(min_value=1, max_value=1000),
    bids=st.lists(
        st.tuples(st.from_regex(r"[0-9.]{1,12}", fullmatch=True), st.just("1")), max_size=4
    ),
    asks=st.lists(
        st.tuples(st.just("2.5"), st.from_regex(r"[0-9.]{1,12}", fullmatch=True)), max_size=4
    ),
)
def test_book_template_renders_the_bytes_the_oracle_makes(
    *,
    category: str,
    symbol: str,
    ints: list[int],
    cts: int | None,
    depth: int,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
) -> None:
    """The builder's hot path (template + pre-serialised levels) against the reference."""
    seq, pub_ns, recv_ns, u, ts = ints

    def body(levels: list[tuple[str, str]]) -> str:
        return ",".join(f'["{price}","{size}"]' for price, size in levels)

    fast = wire.BookTemplate(category, symbol).render(
        seq, pub_ns, recv_ns, u, ts, cts or 0, depth, body(bids), body(asks)
    )
    reference = encode_book(
        category,
        symbol,
        seq=seq,
        pub_ns=pub_ns,
        recv_ns=recv_ns,
        u=u,
        ts=ts,
        cts=cts,
        depth=depth,
        bids=bids,
        asks=asks,
    )
    assert fast == reference
    assert decode_payload(fast)["bids"] == [list(b) for b in bids]


def test_book_template_validates_its_topic() -> None:
    with pytest.raises(WireError):
        wire.BookTemplate("futures", "BTCUSDT")
    with pytest.raises(WireError):
        wire.BookTemplate("linear", 'BTC"USDT')


decimals = st.from_regex(r"[0-9.]{1,20}", fullmatch=True)


@settings(max_examples=examples(200), deadline=None)
@given(
    category=st.sampled_from(CATEGORIES),
    symbol=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    ints=st.lists(st.integers(min_value=0, max_value=U64), min_size=6, max_size=6),
    bid=st.none() | st.tuples(decimals, decimals),
    ask=st.none() | st.tuples(decimals, decimals),
    depth=st.sampled_from([1, 50, 200, 500, 1000, "full"]),
)
def test_bbo_template_renders_the_bytes_encode_bbo_makes(
    *,
    category: str,
    symbol: str,
    ints: list[int],
    bid: tuple[str, str] | None,
    ask: tuple[str, str] | None,
    depth: int | str,
) -> None:
    """The builder's bbo (a template) against the payload's dict encoded by orjson."""
    seq, pub_ns, recv_ns, u, ts, bybit_seq = ints
    fast = wire.BboTemplate(category, symbol).render(
        seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq, depth
    )
    reference = wire.encode_bbo(
        category,
        symbol,
        seq=seq,
        pub_ns=pub_ns,
        recv_ns=recv_ns,
        u=u,
        ts=ts,
        bid=None if bid is None else bid[0],
        bid_size=None if bid is None else bid[1],
        ask=None if ask is None else ask[0],
        ask_size=None if ask is None else ask[1],
        bybit_seq=bybit_seq,
        depth=depth,
    )
    assert fast == reference


def test_bbo_template_validates_its_topic() -> None:
    with pytest.raises(WireError):
        wire.BboTemplate("futures", "BTCUSDT")
    with pytest.raises(WireError):
        wire.BboTemplate("linear", 'BTC"USDT')

"""mdgw.core.render: one message -> one line, pure."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import orjson
from hypothesis import assume, given
from hypothesis import strategies as st

from mdgw.core import wire
from mdgw.core.render import format_duration, render_json, render_line
from mdgw.testing import oracles

# 2025-01-02 03:04:05.678 UTC, plus 123 µs and 456 ns.
PUB_NS = 1_735_787_045_678_123_456
RECV_NS = PUB_NS - 41_000
NOW_NS = PUB_NS + 1_200_000


def book(**fields: object) -> dict[str, object]:
    payload: dict[str, object] = orjson.loads(
        oracles.encode_book(
            "linear",
            "BTCUSDT",
            seq=42,
            pub_ns=PUB_NS,
            recv_ns=RECV_NS,
            u=1001,
            ts=1,
            cts=2,
            depth=2,
            bids=[("65000.5", "1.25"), ("65000.0", "3")],
            asks=[("65000.6", "0.4"), ("65001", "2")],
        )
    )
    payload.update(fields)
    return payload


def line(payload: dict[str, object], topic: bytes = b"book.linear.BTCUSDT.", **kw: object) -> str:
    return render_line(topic, payload, now_ns=NOW_NS, tz=UTC, **kw)  # type: ignore[arg-type]


def test_book_line_shows_time_topic_best_levels_spread_seq_and_latency() -> None:
    assert line(book()) == (
        "03:04:05.678 book   linear  BTCUSDT     "
        "65000.5 x 1.25 | 65000.6 x 0.4  spread 0.1  seq 42  "
        "recv->pub 41µs  recv->now 1.2ms"
    )


def test_time_is_shown_in_the_given_zone() -> None:
    tz = timezone(timedelta(hours=2))
    assert render_line(b"", book(), now_ns=NOW_NS, tz=tz).startswith("05:04:05.678 ")


def test_spread_is_exact_decimal_arithmetic() -> None:
    payload = book(bids=[["0.1", "1"]], asks=[["0.3", "1"]])
    assert "spread 0.2 " in line(payload)


def test_empty_side_shows_a_dash_and_no_spread() -> None:
    assert "65000.5 x 1.25 | -  spread -" in line(book(asks=[]))


def test_bbo_line() -> None:
    payload = orjson.loads(
        wire.encode_bbo(
            "inverse",
            "BTCUSDH26",
            seq=7,
            pub_ns=PUB_NS,
            recv_ns=RECV_NS,
            u=5,
            ts=1,
            bid="99000",
            bid_size="10",
            ask="99000.5",
            ask_size="20",
        )
    )
    assert line(payload, b"bbo.inverse.BTCUSDH26.") == (
        "03:04:05.678 bbo    inverse BTCUSDH26   99000 x 10 | 99000.5 x 20  spread 0.5  seq 7  "
        "recv->pub 41µs  recv->now 1.2ms"
    )


def test_trade_line_has_side_price_size_id() -> None:
    payload = orjson.loads(
        wire.encode_trade(
            "spot",
            "ETHUSDT",
            seq=3,
            pub_ns=PUB_NS,
            recv_ns=RECV_NS,
            trade_id="t-1",
            price="3000.01",
            size="0.5",
            side="sell",
            ts=1,
            block=True,
        )
    )
    assert line(payload, b"trade.spot.ETHUSDT.") == (
        "03:04:05.678 trade  spot    ETHUSDT     sell 3000.01 x 0.5  id t-1  block  seq 3  "
        "recv->pub 41µs  recv->now 1.2ms"
    )


def test_status_line_without_recv_ns_has_no_latency() -> None:
    payload = orjson.loads(
        wire.encode_status(
            "inverse", "BTCUSD", seq=2, pub_ns=PUB_NS, state="resyncing", reason="u gap at u=9"
        )
    )
    assert line(payload, b"status.inverse.BTCUSD.") == (
        "03:04:05.678 status inverse BTCUSD      resyncing  u gap at u=9  seq 2"
    )


def test_snapshot_items_are_marked() -> None:
    assert line(book(), snapshot=True).endswith("  (snapshot)")


def test_control_characters_cannot_break_the_line() -> None:
    payload = book(symbol="BTC\nUSDT", bids=[["1\r\n", "2"]])
    text = line(payload)
    assert "\n" not in text and "\r" not in text
    assert "BTC\\nUSDT" in text


def test_durations() -> None:
    assert format_duration(0) == "0µs"
    assert format_duration(41_000) == "41µs"
    assert format_duration(999_499) == "999µs"
    assert format_duration(1_234_567) == "1.2ms"
    assert format_duration(2_500_000_000) == "2.50s"
    assert format_duration(-3_000) == "-3µs"


def test_json_is_the_payload_plus_the_topic() -> None:
    payload = book()
    out = render_json(b"book.linear.BTCUSDT.", payload)
    assert b"\n" not in out
    assert orjson.loads(out) == {**payload, "topic": "book.linear.BTCUSDT."}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    channel=st.sampled_from([*wire.CHANNELS, "other"]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "pub_ns",
                "recv_ns",
                "seq",
                "symbol",
                "bids",
                "asks",
                "bid",
                "ask",
                "bid_size",
                "side",
                "price",
                "size",
                "id",
                "state",
                "reason",
                "block",
                "category",
            ]
        ),
        JSON_VALUES,
    ),
)
def test_any_decoded_payload_renders_as_one_line(channel: str, fields: dict[str, object]) -> None:
    try:  # what the printer gets: a JSON object that orjson parsed
        payload = orjson.loads(orjson.dumps({**book(), "channel": channel, **fields}))
    except orjson.JSONEncodeError:  # integers beyond 64 bits, lone surrogates
        assume(False)
    text = render_line(b"x", payload, now_ns=NOW_NS, tz=UTC)
    assert isinstance(text, str)
    assert text.isprintable()
    assert b"\n" not in render_json(b"book.linear.BTCUSDT.", payload)

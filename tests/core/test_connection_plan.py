"""mdgw.core.connection_plan: configured streams into topics, topics into connections."""

from __future__ import annotations

import orjson
import pytest

from mdgw.core.bybit import orderbook_topic
from mdgw.core.bybit_spec import MAX_ARGS_CHARS_PER_CONNECTION
from mdgw.core.connection_plan import (
    Selection,
    SelectionError,
    args_chars,
    plan_connections,
    plan_streams,
)
from mdgw.runtime.settings import StreamConfig


def test_plan_connections_stays_under_the_args_limit() -> None:
    topics = [orderbook_topic(1000, f"SYM{i:05d}USDT") for i in range(2000)]
    groups = plan_connections(topics)
    assert [t for g in groups for t in g] == topics
    assert all(args_chars(g) <= MAX_ARGS_CHARS_PER_CONNECTION for g in groups)
    assert len(orjson.dumps(groups[0])) <= MAX_ARGS_CHARS_PER_CONNECTION
    # Packing is tight: adding the next topic to a full group would exceed the limit.
    assert args_chars([*groups[0], groups[1][0]]) > MAX_ARGS_CHARS_PER_CONNECTION


def test_plan_streams_packs_topics_per_category_and_validates_the_selection() -> None:
    streams = [
        StreamConfig(category="linear", symbols=["BTCUSDT", "ETHUSDT"], depth=50, trades=True),
        StreamConfig(category="spot", symbols=["BTCUSDT"], depth=200, trades=False),
    ]
    assert plan_streams(streams, Selection()) == {
        "linear": [
            [
                "orderbook.50.BTCUSDT",
                "publicTrade.BTCUSDT",
                "orderbook.50.ETHUSDT",
                "publicTrade.ETHUSDT",
            ]
        ],
        "spot": [["orderbook.200.BTCUSDT"]],
    }
    assert plan_streams(streams, Selection(("linear",), ("ETHUSDT",))) == {
        "linear": [["orderbook.50.ETHUSDT", "publicTrade.ETHUSDT"]]
    }
    with pytest.raises(SelectionError, match="inverse"):
        plan_streams(streams, Selection(("inverse",)))
    with pytest.raises(SelectionError, match="ETHUSDT"):
        plan_streams(streams, Selection(("spot",), ("ETHUSDT",)))
    many = [
        StreamConfig(category="linear", symbols=[f"S{i:05d}USDT" for i in range(1500)], depth=1)
    ]
    groups = plan_streams(many, Selection())["linear"]
    assert len(groups) > 1 and sum(len(g) for g in groups) == 3000


def test_a_stream_with_n_connections_has_its_topics_on_n_websockets_never_twice_on_one() -> None:
    streams = [
        StreamConfig(category="linear", symbols=["BTCUSDT"], depth=50, connections=2),
        StreamConfig(category="linear", symbols=["ETHUSDT"], depth=1, trades=False),
        StreamConfig(category="spot", symbols=["BTCUSDT"], depth=1, trades=False, connections=3),
    ]
    assert plan_streams(streams, Selection()) == {
        "linear": [
            ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.1.ETHUSDT"],
            ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"],
        ],
        "spot": [["orderbook.1.BTCUSDT"]] * 3,
    }
    assert plan_streams(streams, Selection(("linear",), ("ETHUSDT",))) == {
        "linear": [["orderbook.1.ETHUSDT"]]
    }


def test_rpi_books_of_a_stream_with_n_connections_are_on_its_first_websocket_only() -> None:
    """The builder arbitrates orderbook.{depth} over sources, not orderbook.rpi: an RPI book
    stays single-source, so only copy 0 of an A/B stream subscribes it."""
    streams = [
        StreamConfig(category="linear", symbols=["BTCUSDT"], depth=50, rpi=True, connections=2),
    ]
    assert plan_streams(streams, Selection()) == {
        "linear": [
            ["orderbook.50.BTCUSDT", "orderbook.rpi.BTCUSDT", "publicTrade.BTCUSDT"],
            ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"],
        ]
    }


def test_option_connections_hold_at_most_2000_topics() -> None:
    from mdgw.core.bybit_spec import MAX_ARGS_PER_CONNECTION
    from mdgw.core.connection_plan import plan_connections

    topics = [f"orderbook.25.BTC-27DEC26-{i}-C" for i in range(4500)]
    # (the 21,000-character limit binds first on real topics; lift it to see this one)
    groups = plan_connections(topics, 10**9, max_args=MAX_ARGS_PER_CONNECTION["option"])
    assert [len(g) for g in groups] == [2000, 2000, 500]
    assert [t for g in groups for t in g] == topics

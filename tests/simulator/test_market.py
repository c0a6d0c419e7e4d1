"""The simulator's market model, pure: no sockets, no clocks (time is passed in)."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdgw.simulator.instruments import base_of, instrument_for
from mdgw.simulator.market import (
    DEPTHS,
    Frame,
    Market,
    MarketParams,
    TruthUnavailableError,
    Window,
    parse_served_topic,
)
from mdgw.testing.reference import ReferenceBook

T0 = 1_790_000_000_000
STEP_MS = 50


def make_market(**overrides: Any) -> Market:
    params: dict[str, Any] = {
        "streams": {"linear": ["BTCUSDT", "ETHUSDT"], "spot": ["BTCUSDT"], "inverse": ["BTCUSD"]},
        "seed": 7,
        "levels": 1000,
    }
    params.update(overrides)
    return Market(MarketParams(**params))


def subscribe(market: Market, category: str, topic: str, now: int = T0) -> Frame | None:
    flushed, snapshot = market.subscribe(category, topic, now)
    assert not flushed
    return snapshot


def decoded(frame: Frame) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(frame.payload)
    return obj


# --- instruments ----------------------------------------------------------------------


def test_prices_are_realistic_and_printed_per_category() -> None:
    linear = instrument_for("linear", "BTCUSDT")
    spot = instrument_for("spot", "BTCUSDT")
    inverse = instrument_for("inverse", "BTCUSD")
    eth = instrument_for("linear", "ETHUSDT")
    for inst in (linear, spot, inverse):
        assert 64_000 < inst.start_price / 10**inst.price_scale < 66_000
    assert 3_450 < eth.start_price / 10**eth.price_scale < 3_550
    # Linear: fixed decimals, tick 0.10 (Bybit's BTCUSDT priceScale 2).
    assert linear.price_str(6511420) == "65114.20"
    assert linear.price_str(linear.tick) == "0.10"
    assert linear.size_str(10) == "0.010"
    # Spot: trimmed.
    assert spot.price_str(652390) == "65239"
    assert spot.price_str(651404) == "65140.4"
    assert spot.size_str(14000) == "0.014"
    # Inverse: whole contracts.
    assert inverse.size_str(5823) == "5823"
    assert inverse.price_str(2856050) == "28560.50"


def test_unknown_symbols_are_derived_from_their_name() -> None:
    first = instrument_for("linear", "FOOBARUSDT")
    assert first == instrument_for("linear", "FOOBARUSDT")
    assert first != instrument_for("linear", "BAZUSDT")
    price = first.start_price / 10**first.price_scale
    assert 0.0009 < price < 1100
    # About 10^5 ticks to the price: deep books stay well above zero.
    assert 10**4 <= first.start_price // first.tick < 10**6
    assert base_of("BTCUSDH26") == "BTC"
    assert base_of("BTC-26DEC25") == "BTC"
    assert base_of("1000PEPEUSDT") == "1000PEPE"


def test_parse_served_topic() -> None:
    assert parse_served_topic("orderbook.50.BTCUSDT") == ("BTCUSDT", 50)
    assert parse_served_topic("orderbook.1000.BTCUSD") == ("BTCUSD", 1000)
    assert parse_served_topic("publicTrade.ETHUSDT") == ("ETHUSDT", 0)
    for bad in ("orderbook.500.BTCUSDT", "orderbook.050.BTCUSDT", "orderbook.50", "tickers.X", ""):
        assert parse_served_topic(bad) is None


# --- frames ---------------------------------------------------------------------------


def test_book_frames_have_bybits_key_order_per_category() -> None:
    market = make_market()
    spot = subscribe(market, "spot", "orderbook.50.BTCUSDT")
    linear = subscribe(market, "linear", "orderbook.50.BTCUSDT")
    inverse = subscribe(market, "inverse", "orderbook.200.BTCUSD")
    assert spot is not None and linear is not None and inverse is not None
    assert list(decoded(spot)) == ["topic", "ts", "type", "data", "cts"]
    assert list(decoded(linear)) == ["topic", "type", "ts", "data", "cts"]
    assert list(decoded(inverse)) == ["topic", "type", "ts", "data", "cts"]
    for frame in (spot, linear, inverse):
        assert list(decoded(frame)["data"]) == ["s", "b", "a", "u", "seq"]
        assert frame.payload.startswith(b'{"topic":"orderbook.')
    assert re.fullmatch(r"\d+\.\d{2}", decoded(linear)["data"]["b"][0][0])
    assert re.fullmatch(r"\d+", decoded(inverse)["data"]["a"][0][1])
    # u starts at a realistic large number, each depth topic has its own.
    u_values = {decoded(f)["data"]["u"] for f in (spot, linear, inverse)}
    assert len(u_values) == 3 and min(u_values) > 100_000


def test_trade_frames_per_category() -> None:
    market = make_market()
    for category in ("spot", "linear"):
        subscribe(market, category, "publicTrade.BTCUSDT")
    spot = market.step("spot", "BTCUSDT", T0, trades=1, quotes=False)[0]
    linear = market.step("linear", "BTCUSDT", T0, trades=1, quotes=False)[0]
    assert spot.kind == "trade" and linear.kind == "trade"
    spot_obj, linear_obj = decoded(spot), decoded(linear)
    assert list(spot_obj) == ["topic", "ts", "type", "data"]
    assert list(linear_obj) == ["topic", "type", "ts", "data"]
    assert spot_obj["type"] == linear_obj["type"] == "snapshot"
    assert list(spot_obj["data"][0]) == ["i", "T", "p", "v", "S", "seq", "s", "BT", "RPI"]
    assert list(linear_obj["data"][0]) == ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
    assert spot_obj["data"][0]["i"].isdigit()
    assert uuid.UUID(linear_obj["data"][0]["i"]).version == 5
    assert linear_obj["data"][0]["L"] in ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")


def test_seq_increases_across_topics_and_trades() -> None:
    market = make_market(trade_rate=20.0)
    for topic in ("orderbook.1.BTCUSDT", "orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"):
        subscribe(market, "linear", topic)
    last = 0
    for index in range(1, 60):
        for frame in market.step("linear", "BTCUSDT", T0 + index * STEP_MS):
            obj = decoded(frame)
            seqs = (
                [t["seq"] for t in obj["data"]] if frame.kind == "trade" else [obj["data"]["seq"]]
            )
            assert min(seqs) >= last
            last = max(seqs)


# --- the core property: snapshot + deltas == truth, never crossed -----------------------


def _check_window(
    market: Market, category: str, symbol: str, depth: int, book: ReferenceBook
) -> Window:
    assert book.u is not None
    truth = market.truth(category, symbol, depth, book.u)
    assert book.bid_levels() == truth.bids
    assert book.ask_levels() == truth.asks
    assert len(truth.bids) == len(truth.asks) == depth  # levels >= 1000: windows stay full
    assert not book.crossed()
    return truth


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)
@given(
    seed=st.integers(0, 2**32),
    category=st.sampled_from(["spot", "linear", "inverse"]),
    levels=st.integers(1000, 1100),
    trade_rate=st.sampled_from([0.0, 2.0, 30.0]),
    steps=st.integers(20, 60),
    restart_at=st.one_of(st.none(), st.integers(1, 59)),
)
def test_replaying_frames_reproduces_the_truth_at_every_u(
    *,
    seed: int,
    category: str,
    levels: int,
    trade_rate: float,
    steps: int,
    restart_at: int | None,
) -> None:
    symbol = "BTCUSD" if category == "inverse" else "ETHUSDT"
    market = Market(
        MarketParams(
            streams={category: [symbol]},  # type: ignore[dict-item]
            seed=seed,
            levels=levels,
            trade_rate=trade_rate,
        )
    )
    books: dict[str, ReferenceBook] = {}
    seen: dict[str, list[tuple[int, list[tuple[str, str]], list[tuple[str, str]]]]] = {}
    for depth in DEPTHS:
        topic = f"orderbook.{depth}.{symbol}"
        snapshot = subscribe(market, category, topic)
        assert snapshot is not None
        books[topic] = ReferenceBook()
        books[topic].apply(decoded(snapshot))
        seen[topic] = []
    for index in range(1, steps + 1):
        now = T0 + index * STEP_MS
        frames = market.step(category, symbol, now)  # type: ignore[arg-type]
        if index == restart_at:
            frames.append(market.restart(category, f"orderbook.50.{symbol}", now))
        for frame in frames:
            obj = decoded(frame)
            book = books[frame.topic]
            if obj["type"] == "delta":
                assert obj["data"]["u"] == book.u + 1  # type: ignore[operator]
                assert obj["data"]["b"] or obj["data"]["a"]  # no empty deltas
            elif frame.topic.startswith("orderbook.1."):
                assert obj["data"]["u"] == book.u + 1  # type: ignore[operator]
            else:
                assert obj["data"]["u"] == 1  # the restart
            book.apply(obj)
        for depth in DEPTHS:
            topic = f"orderbook.{depth}.{symbol}"
            truth = _check_window(market, category, symbol, depth, books[topic])
            seen[topic].append((truth.u, truth.bids, truth.asks))
    # Older u's are still known exactly (history), not just the latest.
    for topic, states in seen.items():
        depth = int(topic.split(".")[1])
        for u, bids, asks in states[:: max(1, len(states) // 5)]:
            truth = market.truth(category, symbol, depth, u)
            assert (truth.bids, truth.asks) == (bids, asks)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    category=st.sampled_from(["spot", "linear"]),
    history=st.integers(1, 90),
    steps=st.integers(1, 120),
    late=st.integers(0, 60),
    restart_at=st.one_of(st.none(), st.integers(1, 119)),
    strangers=st.lists(st.integers(-3, 10**8), max_size=5),
)
def test_truths_in_one_walk_equal_truth_at_each_u(
    *,
    seed: int,
    category: str,
    history: int,
    steps: int,
    late: int,
    restart_at: int | None,
    strangers: list[int],
) -> None:
    """Market.truths (one walk back) answers exactly as Market.truth does u by u: the same
    window, and nothing where truth() raises (never sent, older than the history)."""
    symbol = "ETHUSDT"
    market = Market(
        MarketParams(
            streams={category: [symbol]},  # type: ignore[dict-item]
            seed=seed,
            levels=1000,
            truth_history=history,
        )
    )
    sent: dict[int, list[int]] = {depth: [] for depth in DEPTHS}

    def track(depth: int, now: int) -> None:
        snapshot = subscribe(market, category, f"orderbook.{depth}.{symbol}", now)
        sent[depth].append(snapshot.u if snapshot is not None else 0)

    for depth in (1, 50):
        track(depth, T0)
    for index in range(1, steps + 1):
        now = T0 + index * STEP_MS
        if index == late:  # a topic tracked later than the symbol's history began
            track(200, now)
            track(1000, now)
        frames = market.step(category, symbol, now)  # type: ignore[arg-type]
        if index == restart_at:
            frames.append(market.restart(category, f"orderbook.50.{symbol}", now))
        for frame in frames:
            if frame.topic.startswith("orderbook."):
                sent[int(frame.topic.split(".")[1])].append(frame.u)
    for depth, us in sent.items():
        wanted = {*us, *strangers}
        truths = market.truths(category, symbol, depth, wanted)
        for u in wanted:
            try:
                one = market.truth(category, symbol, depth, u)
            except TruthUnavailableError:
                assert u not in truths
            else:
                assert truths[u] == one
    assert market.truths(category, symbol, 25, {1}) == {}  # never tracked


# --- level 1 ----------------------------------------------------------------------------


def test_level1_is_snapshot_only_with_same_u_resends() -> None:
    market = make_market(resend_interval=3.0)
    first = subscribe(market, "linear", "orderbook.1.BTCUSDT")
    assert first is not None
    u0 = first.u
    # Nothing moves: no frame; a re-send with the same u once 3 s have passed.
    assert market.step("linear", "BTCUSDT", T0 + 100, trades=0, quotes=False) == []
    assert market.resends(T0 + 2_900) == []
    resent = market.resends(T0 + 3_000)
    assert [(f.kind, f.u, f.fresh) for f in resent] == [("snapshot", u0, False)]
    assert decoded(resent[0])["data"]["b"] == decoded(first)["data"]["b"]
    assert market.resends(T0 + 3_100) == []
    # The top changes (a trade eats it): a new snapshot with u + 1.
    moved = market.step("linear", "BTCUSDT", T0 + 3_200, trades=1, quotes=False)
    books = [f for f in moved if f.topic == "orderbook.1.BTCUSDT"]
    assert [(f.kind, f.u, f.fresh) for f in books] == [("snapshot", u0 + 1, True)]


# --- trades eat the book ------------------------------------------------------------------


def test_trades_consume_the_touch_and_the_book_shows_it() -> None:
    market = make_market(trade_rate=0.0)
    book_topic = "orderbook.50.BTCUSDT"
    snapshot = subscribe(market, "linear", book_topic)
    subscribe(market, "linear", "publicTrade.BTCUSDT")
    assert snapshot is not None
    book = ReferenceBook()
    book.apply(decoded(snapshot))
    for index in range(1, 30):
        before_bids = dict(book.bids)
        before_asks = dict(book.asks)
        frames = market.step("linear", "BTCUSDT", T0 + index * STEP_MS, trades=1, quotes=False)
        trade, delta = decoded(frames[0]), decoded(frames[1])
        assert frames[0].kind == "trade" and delta["data"]["u"] == book.u + 1  # type: ignore[operator]
        book.apply(delta)
        taker = trade["data"][0]["S"]
        resting, after = (before_asks, book.asks) if taker == "Buy" else (before_bids, book.bids)
        consumed: dict[Decimal, Decimal] = {}
        for fill in trade["data"]:
            assert fill["S"] == taker
            price = Decimal(fill["p"])
            consumed[price] = consumed.get(price, Decimal(0)) + Decimal(fill["v"])
        # The taker ate the best levels, best first, and nothing else moved on that side.
        best = sorted(resting, reverse=taker == "Sell")[: len(consumed)]
        assert sorted(consumed) == sorted(best)
        for price, size in consumed.items():
            left = Decimal(resting[price][1]) - size
            assert left >= 0
            if left:
                assert Decimal(after[price][1]) == left
            else:
                assert price not in after
        assert not book.crossed()


# --- subscriptions, restarts, history -----------------------------------------------------


def test_new_subscriber_gets_the_current_u_after_held_back_changes() -> None:
    market = make_market()
    topic = "orderbook.1000.BTCUSDT"
    snapshot = subscribe(market, "linear", topic)
    assert snapshot is not None
    u0 = snapshot.u
    # Two steps inside one 200 ms push interval: the first is sent, the second held back.
    first = market.step("linear", "BTCUSDT", T0 + 50)
    held = market.step("linear", "BTCUSDT", T0 + 100)
    assert [f.u for f in first if f.topic == topic] == [u0 + 1]
    assert [f for f in held if f.topic == topic] == []
    flushed, fresh = market.subscribe("linear", topic, T0 + 120)
    assert [(f.kind, f.u) for f in flushed] == [("delta", u0 + 2)]
    assert fresh is not None and (fresh.kind, fresh.u, fresh.fresh) == ("snapshot", u0 + 2, False)
    truth = market.truth("linear", "BTCUSDT", 1000, u0 + 2)
    assert decoded(fresh)["data"]["b"] == [list(level) for level in truth.bids]


def test_restart_is_part_of_the_truth() -> None:
    market = make_market()
    topic = "orderbook.200.BTCUSDT"
    subscribe(market, "linear", topic)
    market.step("linear", "BTCUSDT", T0 + 50)
    restart = market.restart("linear", topic, T0 + 60)
    assert (restart.kind, restart.u, restart.fresh) == ("snapshot", 1, True)
    book = ReferenceBook()
    book.apply(decoded(restart))
    assert book.bid_levels() == market.truth("linear", "BTCUSDT", 200, 1).bids
    for index in range(2, 12):
        for frame in market.step("linear", "BTCUSDT", T0 + index * 200):
            if frame.topic == topic:
                obj = decoded(frame)
                assert obj["data"]["u"] == book.u + 1  # type: ignore[operator]
                book.apply(obj)
    assert book.u is not None and 1 < book.u < 20
    _check_window(market, "linear", "BTCUSDT", 200, book)


def test_truth_is_unavailable_for_unsent_or_forgotten_u() -> None:
    market = make_market(truth_history=10)
    snapshot = subscribe(market, "linear", "orderbook.50.BTCUSDT")
    assert snapshot is not None
    with pytest.raises(TruthUnavailableError):
        market.truth("linear", "BTCUSDT", 50, snapshot.u + 1000)
    with pytest.raises(TruthUnavailableError):
        market.truth("linear", "BTCUSDT", 200, 1)  # never tracked
    for index in range(1, 40):
        market.step("linear", "BTCUSDT", T0 + index * STEP_MS)
    with pytest.raises(TruthUnavailableError):
        market.truth("linear", "BTCUSDT", 50, snapshot.u)  # too old
    latest = market.current_u("linear", "BTCUSDT", 50)
    assert len(market.truth("linear", "BTCUSDT", 50, latest).bids) == 50


def test_same_seed_same_market_whoever_listens() -> None:
    quiet, busy = make_market(seed=3), make_market(seed=3)
    for topic in ("orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT", "publicTrade.BTCUSDT"):
        subscribe(busy, "linear", topic)
    for index in range(1, 80):
        quiet.step("linear", "BTCUSDT", T0 + index * STEP_MS)
        busy.step("linear", "BTCUSDT", T0 + index * STEP_MS)
    late = quiet.subscribe("linear", "orderbook.50.BTCUSDT", T0 + 80 * STEP_MS)[1]
    busy_truth = busy.truth("linear", "BTCUSDT", 50, busy.current_u("linear", "BTCUSDT", 50))
    assert late is not None
    assert decoded(late)["data"]["b"] == [list(level) for level in busy_truth.bids]
    assert make_market(seed=4).rest_orderbook("linear", "BTCUSDT", 5, T0) != quiet.rest_orderbook(
        "linear", "BTCUSDT", 5, T0
    )


def test_rest_orderbook_is_the_1000_level_stream_at_its_u() -> None:
    market = make_market()
    for index in range(1, 10):
        market.step("linear", "ETHUSDT", T0 + index * STEP_MS)
    result = market.rest_orderbook("linear", "ETHUSDT", 30, T0 + 500)
    assert list(result) == ["s", "b", "a", "ts", "u", "seq", "cts"]
    assert len(result["b"]) == len(result["a"]) == 30
    truth = market.truth("linear", "ETHUSDT", 1000, result["u"])
    assert result["b"] == [list(level) for level in truth.bids[:30]]
    assert result["u"] == market.current_u("linear", "ETHUSDT", 1000)


def test_the_sans_io_modules_import_no_io() -> None:
    import ast
    from pathlib import Path

    import mdgw.simulator as package

    forbidden = {"asyncio", "websockets", "socket", "time", "structlog", "zmq", "os", "datetime"}
    root = Path(package.__file__).parent
    for name in ("market.py", "protocol.py", "faults.py", "instruments.py"):
        tree = ast.parse((root / name).read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not imported & forbidden, (name, imported & forbidden)

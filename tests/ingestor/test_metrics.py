"""The ingestor's metrics helpers: ts extraction, reconnect labels, connection state, health."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdgw.core.bybit_control import Control, FrameKind
from mdgw.core.subscriptions import Subscriptions
from mdgw.ingestor.metrics import (
    RECONNECT_REASONS,
    ConnectionView,
    connection_state,
    frame_ts_ms,
    health_of,
    reconnect_label,
)
from mdgw.runtime.metrics import EXCHANGE_LATENCY_BOUNDS, Buckets


def test_frame_ts_is_read_without_parsing() -> None:
    frame = b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{}}'
    assert frame_ts_ms(frame) == 1687940967466
    assert frame_ts_ms(b'{"topic":"x","data":{"ts":') is None
    assert frame_ts_ms(b'{"op":"pong"}') is None


@given(st.binary(max_size=300))
def test_frame_ts_never_raises(frame: bytes) -> None:
    ts = frame_ts_ms(frame)
    assert ts is None or ts >= 0


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("connect failed", "connect_failed"),
        ("silent for 30.1s", "silence"),
        ("closed by server: 1001 going away", "server_closed"),
        ("connection lost", "connection_lost"),
        ("frame above max_size: ...", "oversized"),
        ("resync of orderbook.50.X requested reconnect: u gap", "replaced"),
        ("closed by us: 1000", "closed_by_us"),
        ("session failed", "session_failed"),
        ("something new", "connection_lost"),
    ],
)
def test_reconnect_reasons_map_to_bounded_labels(reason: str, label: str) -> None:
    assert reconnect_label(reason) == label
    assert label in RECONNECT_REASONS


def test_connection_state_follows_the_subscriptions() -> None:
    subs = Subscriptions("linear", ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"])
    assert connection_state(False, subs) == "connecting"
    requests = subs.on_connect(0.0)
    assert connection_state(True, subs) == "subscribing"
    req_id = orjson.loads(requests[0])["req_id"]
    subs.on_control(Control(FrameKind.ACK, "subscribe", "", req_id, "c1"), 0.1)
    assert connection_state(True, subs) == "subscribed"


def view(state: str, refused: tuple[str, ...] = ()) -> ConnectionView:
    return ConnectionView(
        "linear#0",
        "linear",
        state,
        0.5,
        10,
        0,
        {},
        2,
        refused,
        Buckets(EXCHANGE_LATENCY_BOUNDS),  # type: ignore[arg-type]
    )


def test_health_is_503_unless_every_connection_is_subscribed() -> None:
    assert health_of("ing", [view("subscribed")])[0]
    healthy, body = health_of("ing", [view("subscribed"), view("connecting")])
    assert not healthy and body["problems"] == ["linear#0: connecting"]
    healthy, body = health_of("ing", [view("subscribed", refused=("orderbook.50.NOPE",))])
    assert not healthy and "refused" in body["problems"][0]
    assert not health_of("ing", [])[0]

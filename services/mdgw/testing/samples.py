"""Sample gateway payloads with fixed values, for the tests of the wire format.

One ``book`` and one ``bbo`` of ``linear``/``BTCUSDT`` whose every field is known, so that
the payload tests and the snapshot-framing tests build the same messages.
"""

from __future__ import annotations

from typing import Any

from mdgw.core.wire import encode_bbo
from mdgw.testing.oracles import encode_book

__all__ = ["sample_bbo", "sample_book"]


def sample_book(**over: Any) -> bytes:
    """A ``book`` payload (by the oracle encoder); keyword arguments replace fields."""
    args: dict[str, Any] = {
        "seq": 7,
        "pub_ns": 1_700_000_000_000_000_100,
        "recv_ns": 1_700_000_000_000_000_000,
        "u": 123,
        "ts": 1_700_000_000_000,
        "cts": 1_699_999_999_999,
        "depth": 25,
        "bids": [("65000.5", "1.2"), ("65000", "0.5")],
        "asks": [("65001", "3")],
    }
    args.update(over)
    return encode_book("linear", "BTCUSDT", **args)


def sample_bbo() -> bytes:
    """A ``bbo`` payload."""
    return encode_bbo(
        "linear",
        "BTCUSDT",
        seq=3,
        pub_ns=2,
        recv_ns=1,
        u=123,
        ts=1_700_000_000_000,
        bid="65000.5",
        bid_size="1.2",
        ask="65001",
        ask_size="3",
    )

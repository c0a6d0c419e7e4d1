"""Replay real Bybit v5 recordings through mdgw.core.bybit and mdgw.core.book.

The recordings live outside the repo, in ``../shared/bybit-recordings`` (their licences are
still to be cleared, see SOURCES.md there), so they are read in place and never copied.
Legacy v2 files (no ``u``) and the TRIMMED tardis samples (hand-cut snapshots) are not
replayed. Expected counts below come from SOURCES.md and were re-checked against the files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mdgw.core.book import BookOutcome, OrderBook
from mdgw.core.bybit import BookFrame, Level, TradeFrame, decode_frame

RECORDINGS = Path(__file__).parents[2].parent / "shared" / "bybit-recordings"
FASTMM = "fastmm_v5-spot-TESTNET_orderbook50-orderbook1-trades_2026-09-13.jsonl"


@dataclass(frozen=True)
class Expected:
    book_frames: int
    snapshots: int
    same_u_resends: int  # orderbook.1 snapshots re-pushed with the previous u
    trade_frames: int
    buys: int
    sells: int


EXPECTED = {
    "cryptofeed-pr1085_v5-linear_orderbook1_2025-06-13.jsonl": Expected(198, 198, 16, 0, 0, 0),
    "cryptofeed-pr1085_v5-spot_orderbook1_2025-06-13.jsonl": Expected(139, 139, 45, 0, 0, 0),
    "cryptofeed-v3_v5-linear_orderbook200-trades-tickers-kline_2026-08-09.jsonl": Expected(
        1598, 4, 0, 102, 112, 215
    ),
    "cryptofeed-v3_v5-spot_orderbook200-trades-tickers-kline_2026-08-09.jsonl": Expected(
        550, 2, 0, 18, 8, 12
    ),
    FASTMM: Expected(33, 15, 2, 7, 1, 7),
    "gocryptotrader_v5-spot_orderbook50_2024-11-08.jsonl": Expected(2, 1, 0, 0, 0, 0),
    "nautilus_bybit-history-dump_v5-linear_orderbook500_XRPUSDT_2024-12-01.jsonl": Expected(
        50, 1, 0, 0, 0, 0
    ),
}


@pytest.fixture(scope="module")
def recordings() -> Path:
    if not RECORDINGS.is_dir():
        pytest.skip(f"no recordings at {RECORDINGS} (they live beside the repo in ../shared)")
    return RECORDINGS


def _decoded(path: Path) -> Iterator[tuple[dict[str, Any], BookFrame | TradeFrame]]:
    """(raw JSON, decoded frame) for every orderbook/publicTrade line; other lines skipped."""
    for line in path.read_bytes().splitlines():
        raw = json.loads(line)
        topic = raw.get("topic")
        if isinstance(topic, str) and topic.startswith(("orderbook.", "publicTrade.")):
            yield raw, decode_frame(line)


@dataclass
class Replay:
    """One topic's book plus an independent Decimal replay of the same frames."""

    book: OrderBook
    bids: dict[Decimal, tuple[str, str]] = field(default_factory=dict)
    asks: dict[Decimal, tuple[str, str]] = field(default_factory=dict)

    def naive_apply(self, frame: BookFrame) -> None:
        if frame.snapshot:
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, frame.bids), (self.asks, frame.asks)):
            for _, price, size, _ in levels:
                if Decimal(size) == 0:
                    assert Decimal(price) in side, f"{frame.topic} u={frame.u}: delete of {price}"
                    del side[Decimal(price)]
                else:
                    side[Decimal(price)] = (price, size)


def _raw_levels(levels: list[Level]) -> list[list[str]]:
    return [[price, size] for _, price, size, _ in levels]


def _replay_book_frame(replay: Replay, raw: dict[str, Any], frame: BookFrame, where: str) -> bool:
    """Apply one frame, check everything a real frame must satisfy; True for a same-u resend."""
    book = replay.book
    assert frame.topic == raw["topic"]
    assert _raw_levels(frame.bids) == raw["data"]["b"], where
    assert _raw_levels(frame.asks) == raw["data"]["a"], where
    prev_u = book.last_u
    before = (book.top_bids(book.max_depth), book.top_asks(book.max_depth))
    outcome = book.apply(frame)
    resend = False
    if frame.snapshot:
        assert outcome is BookOutcome.RESET, where
        resend = frame.u == prev_u
        if resend:  # Bybit re-pushes an unchanged top of book with the same u
            assert (book.top_bids(book.max_depth), book.top_asks(book.max_depth)) == before
    else:
        assert outcome is BookOutcome.APPLIED, where
        assert prev_u is not None and frame.u == prev_u + 1, where
    assert book.live, where
    assert book.last_u == frame.u, where

    replay.naive_apply(frame)
    depth = frame.depth
    # Real books stay within the topic depth, so truncation never fires and the whole
    # book must equal the untruncated Decimal replay, strings included.
    assert book.top_bids(depth + 1) == [replay.bids[p] for p in sorted(replay.bids, reverse=True)]
    assert book.top_asks(depth + 1) == [replay.asks[p] for p in sorted(replay.asks)]
    assert book.bid_count <= depth and book.ask_count <= depth, where
    bid, ask = book.best_bid(), book.best_ask()
    if bid is not None and ask is not None:
        assert Decimal(bid[0]) < Decimal(ask[0]), f"{where}: crossed {bid} / {ask}"
    return resend


def _check_trade_frame(raw: dict[str, Any], frame: TradeFrame, sides: dict[str, int]) -> None:
    assert frame.topic == raw["topic"]
    assert frame.symbol == raw["topic"].removeprefix("publicTrade.")
    assert frame.trades, "Bybit never sends an empty publicTrade batch"
    assert len(frame.trades) == len(raw["data"])
    for trade, item in zip(frame.trades, raw["data"], strict=True):
        assert (trade.id, trade.price, trade.size) == (item["i"], item["p"], item["v"])
        assert trade.side in ("buy", "sell")
        assert trade.side == item["S"].lower()
        assert trade.ts == item["T"]
        sides[trade.side] += 1


def test_every_v5_recording_is_covered(recordings: Path) -> None:
    found = {
        p.name
        for p in recordings.glob("*.jsonl")
        if "legacy" not in p.name and "TRIMMED" not in p.name
    }
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recording_replays_cleanly(recordings: Path, name: str) -> None:
    expected = EXPECTED[name]
    replays: dict[str, Replay] = {}
    book_frames = snapshots = resends = trade_frames = 0
    sides = {"buy": 0, "sell": 0}
    for n, (raw, frame) in enumerate(_decoded(recordings / name)):
        if isinstance(frame, TradeFrame):
            trade_frames += 1
            _check_trade_frame(raw, frame, sides)
            continue
        book_frames += 1
        snapshots += frame.snapshot
        replay = replays.setdefault(frame.topic, Replay(OrderBook(frame.depth)))
        where = f"{name} frame {n} {frame.topic} u={frame.u}"
        resends += _replay_book_frame(replay, raw, frame, where)

    assert book_frames == expected.book_frames
    assert snapshots == expected.snapshots
    assert resends == expected.same_u_resends
    assert trade_frames == expected.trade_frames
    assert sides == {"buy": expected.buys, "sell": expected.sells}
    assert all(r.book.live for r in replays.values())


def test_fastmm_level1_matches_rebuilt_level50_at_the_same_seq(recordings: Path) -> None:
    """Both topics carry the matching engine's ``seq``: where they share one, the level-1
    snapshot must be exactly the top of the level-50 book rebuilt from snapshot + deltas."""
    frames = [f for _, f in _decoded(recordings / FASTMM) if isinstance(f, BookFrame)]
    book50 = OrderBook(50)
    top_at_seq: dict[int, tuple[tuple[str, str] | None, tuple[str, str] | None]] = {}
    for frame in frames:
        if frame.depth == 50:
            assert book50.apply(frame) in (BookOutcome.RESET, BookOutcome.APPLIED)
            top_at_seq[frame.seq] = (book50.best_bid(), book50.best_ask())

    compared = 0
    book1 = OrderBook(1)
    for frame in frames:
        if frame.depth != 1:
            continue
        assert book1.apply(frame) is BookOutcome.RESET
        if frame.seq in top_at_seq:
            compared += 1
            assert (book1.best_bid(), book1.best_ask()) == top_at_seq[frame.seq], frame.seq
    assert compared >= 13

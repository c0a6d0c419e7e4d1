"""``scripts/bench_peers.py``'s replay of a recording: every pass is new data.

A recording replayed unchanged repeats the same messages (same ``u``, same ``ts``), which
mdgw's arbiter drops as duplicates while cryptofeed applies them. These run the mdgw path
only (cryptofeed is not in this venv) on the vendored recordings.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "bybit"


@pytest.fixture(scope="module")
def bp() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_peers", ROOT / "scripts" / "bench_peers.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def book_frames(name: str) -> list[str]:
    lines = (FIXTURES / name).read_text().splitlines()
    return [line for line in lines if line.startswith('{"topic":"orderbook.')]


@pytest.mark.parametrize(
    "name",
    [
        "cryptofeed-pr1085_v5-linear_orderbook1_2025-06-13.jsonl",
        "gocryptotrader_v5-spot_orderbook50_2024-11-08.jsonl",
        "nautilus_bybit-history-dump_v5-linear_orderbook500_XRPUSDT_2024-12-01_first20.jsonl",
    ],
)
def test_every_frame_of_every_pass_publishes_a_right_book(bp: ModuleType, name: str) -> None:
    book = book_frames(name)
    frames = bp.fresh_passes(book, 4)
    assert len(frames) == 4 * len(book)
    assert frames[: len(book)] == [json.dumps(json.loads(f), separators=(",", ":")) for f in book]
    ds = bp.Dataset(name, "spot" if "spot" in name else "linear", [], frames)
    path = bp.MdgwPath(ds)
    _, hub = path.run()
    expected, changing = bp.truth(ds)
    assert path.published(hub) == len(frames)  # no frame dropped as a duplicate
    assert changing > len(book)  # later passes change books too
    assert path.check(hub, expected) == (0, len(expected))
    assert hub.stats.resyncs == 0


def test_the_same_recording_again_would_be_duplicates(bp: ModuleType) -> None:
    # What the fresh passes avoid: the recording twice, unchanged, publishes once.
    book = book_frames("gocryptotrader_v5-spot_orderbook50_2024-11-08.jsonl")
    path = bp.MdgwPath(bp.Dataset("x", "spot", [], book * 3))
    _, hub = path.run()
    assert path.published(hub) == len(book)


def test_a_recording_starting_with_a_delta_is_refused(bp: ModuleType) -> None:
    book = book_frames("gocryptotrader_v5-spot_orderbook50_2024-11-08.jsonl")
    with pytest.raises(ValueError, match="not a snapshot"):
        bp.fresh_passes(book[1:], 2)


def test_a_symbol_at_two_depths_keeps_the_deepest(bp: ModuleType) -> None:
    deep = '{"topic":"orderbook.50.BTCUSDT","type":"snapshot"}'
    shallow = '{"topic":"orderbook.1.BTCUSDT","type":"snapshot"}'
    other = '{"topic":"orderbook.1.ETHUSDT","type":"snapshot"}'
    assert bp.deepest_only([shallow, deep, other, shallow]) == ([deep, other], 2)

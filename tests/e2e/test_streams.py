"""Bybit's newer public streams end to end: simulator -> ingestor -> book_builder -> consumer.

One gateway streams linear BTCUSDT at depth 200 with its RPI book and at depth 1 (so its
``bbo`` is fused), and spot ETHUSDT at depth 200 with its RPI book; ``system.status`` is on
(the default). The consumer checks everything it receives against the simulator's truth:

- every ``rpi`` message equals the RPI window at its ``u`` (both sizes of every level),
  through a gap, a ``u = 1`` restart, a crossed and a malformed frame and a dropped
  connection, and the RPI book is live again after each;
- every ``book`` message is the depth-200 book (never depth 1) and equals its truth;
- every ``bbo`` equals the top of the book it came from, at that book's ``u``, and its
  ``bybit_seq`` only ever grows;
- trades arrive once each, with Bybit's ``seq`` and ``RPI`` flag, even though the
  simulator splits every batch over messages of two trades sharing a ``seq``;
- each ``system.status`` notice version arrives once, also after the status connection is
  dropped and Bybit replays the notice list.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq
import zmq.asyncio

from mdgw.replay.reader import find_segments
from mdgw.simulator.faults import FaultKind, FaultRequest
from mdgw.simulator.market import Frame, TruthUnavailableError
from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.server import SimulatorServer
from mdgw.simulator.system_status import STATUS_PATH
from mdgw.testing.endpoints import tcp_endpoint
from mdgw.testing.processes import Service, clean_env
from mdgw.testing.truth import subscriber, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
PUBLISH_DEPTH = 10
LINEAR = ("linear", "BTCUSDT")
SPOT = ("spot", "ETHUSDT")
# Linear at depth 200 (pushed every 100 ms) beside depth 1 (on every change), so depth 1
# holds the freshest top between two depth-200 frames.
CALL = ("option", "BTC-27DEC26-100000-C")
PUT = ("option", "BTC-27DEC26-90000-P")
DEEP = {LINEAR: 200, SPOT: 200, CALL: 25, PUT: 100}


@dataclass
class Seen:
    wrong: list[str] = field(default_factory=list)
    rpi: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    rpi_unverifiable: int = 0
    books: int = 0
    option_books: int = 0
    books_unverifiable: int = 0
    bbo_seq: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    bbo_depths: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    state: dict[tuple[str, str, str], str] = field(default_factory=dict)
    last_rpi_at: dict[tuple[str, str], float] = field(default_factory=dict)
    trades: dict[tuple[str, str], list[tuple[str, int, bool]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    notices: list[tuple[str, str, int]] = field(default_factory=list)


def config(tmp: Path, sim: SimulatorServer, pub: str) -> Path:
    text = f"""
[bybit]
ws_url = "ws://127.0.0.1:{sim.port}/v5/public"
ping_interval = 1
silence_timeout = 3
backoff_initial = 0.2
backoff_max = 1.0

[[bybit.streams]]
category = "linear"
symbols = ["BTCUSDT"]
depth = 200
rpi = true

[[bybit.streams]]
category = "linear"
symbols = ["BTCUSDT"]
depth = 1
trades = false

[[bybit.streams]]
category = "spot"
symbols = ["ETHUSDT"]
depth = 200
rpi = true

[[bybit.streams]]
category = "option"
symbols = ["BTC-27DEC26-100000-C"]
depth = 25

[[bybit.streams]]
category = "option"
symbols = ["BTC-27DEC26-90000-P"]
depth = 100

[zmq]
raw = "ipc://{tmp}/raw.sock"
control = "ipc://{tmp}/control.sock"
pub = "{pub}"
snapshot = "{tcp_endpoint()}"

[books]
publish_depth = {PUBLISH_DEPTH}
resync_timeout = 2
resync_min_interval = 0.5

[journal]
enabled = true
dir = "{tmp}/journal"

[log]
format = "json"
stats_interval = 2
"""
    path = tmp / "gateway.toml"
    path.write_text(text)
    return path


def check(msg: dict[str, Any], sim: SimulatorServer, seen: Seen) -> None:
    market = sim.market
    channel = msg["channel"]
    if channel == "status":
        if msg.get("scope") == "exchange":
            seen.notices.append((msg["id"], msg["state"], msg["end"]))
        else:
            seen.state[(msg["category"], msg["symbol"], msg["feed"])] = msg["state"]
        return
    key = (msg["category"], msg["symbol"])
    if channel == "rpi":
        seen.state.setdefault((*key, "rpi"), "live")  # joined after its status message
        if seen.state[(*key, "rpi")] != "live":
            seen.wrong.append(f"{key} rpi published while not live")
        try:
            _, bids, asks = market.rpi_truth(key[0], key[1], msg["u"])
        except TruthUnavailableError:
            seen.rpi_unverifiable += 1
            return
        if msg["bids"] != bids[:PUBLISH_DEPTH] or msg["asks"] != asks[:PUBLISH_DEPTH]:
            seen.wrong.append(f"{key} rpi u={msg['u']} differs from the truth")
        seen.rpi[key] += 1
        seen.last_rpi_at[key] = time.monotonic()
    elif channel == "book":
        seen.books += 1
        try:
            truth = market.truth(key[0], key[1], DEEP[key], msg["u"])
        except TruthUnavailableError:
            seen.books_unverifiable += 1  # a depth-1 book would land here: u of another topic
            return
        if key[0] == "option":
            seen.option_books += 1
        if msg["bids"] != [list(x) for x in truth.bids[:PUBLISH_DEPTH]]:
            seen.wrong.append(f"{key} book u={msg['u']} differs from depth {DEEP[key]}")
    elif channel == "bbo":
        seen.bbo_seq[key].append(msg["bybit_seq"])
        seen.bbo_depths[key].add(msg["depth"])
        try:
            truth = market.truth(key[0], key[1], msg["depth"], msg["u"])
        except TruthUnavailableError:
            return
        top = (truth.bids[0][0], truth.bids[0][1], truth.asks[0][0], truth.asks[0][1])
        if (msg["bid"], msg["bid_size"], msg["ask"], msg["ask_size"]) != top:
            seen.wrong.append(f"{key} bbo from depth {msg['depth']} u={msg['u']} is not its top")
    elif channel == "trade":
        seen.trades[key].append((msg["id"], msg["bybit_seq"], msg["rpi"]))
        if key[0] == "option" and msg.get("mark_iv") != "0.4512":
            seen.wrong.append(f"{key} option trade without its fields")


async def consume(sub: zmq.asyncio.Socket, sim: SimulatorServer, seen: Seen) -> None:
    while True:
        _, payload = await sub.recv_multipart()
        check(orjson.loads(payload), sim, seen)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    params = SimulatorParams(
        streams={"linear": ("BTCUSDT",), "spot": ("ETHUSDT",), "option": (CALL[1], PUT[1])},
        port=0,
        seed=11,
        rate=40.0,
        trade_rate=4.0,
        levels=1200,
        resend_interval=1.0,
        truth_history=20_000,
        trades_per_message=2,
    )
    async with SimulatorServer(params) as server:
        yield server


async def test_rpi_fused_bbo_trades_and_system_status(sim: SimulatorServer, tmp_path: Path) -> None:
    sent: dict[tuple[str, str], list[tuple[str, int, bool]]] = defaultdict(list)
    split_batches = 0
    dispatch = sim.fanout.dispatch

    def recording_dispatch(frame: Frame) -> None:
        nonlocal split_batches
        if frame.kind == "trade" and sim.fanout.subs.get((frame.category, frame.topic)):
            data = orjson.loads(frame.payload)["data"]
            key = (frame.category, frame.symbol)
            if sent[key] and sent[key][-1][1] == data[0]["seq"]:
                split_batches += 1
            sent[key] += [(t["i"], t["seq"], t.get("RPI", False)) for t in data]
        dispatch(frame)

    sim.fanout.dispatch = recording_dispatch  # type: ignore[method-assign]

    pub = f"{tcp_endpoint()}"
    path = config(tmp_path, sim, pub)
    env = clean_env(MDGW_CONFIG=str(path))
    services = [
        Service(name, path, tmp_path / f"{name}.log").start()
        for name in ("book_builder", "ingestor")
    ]
    ctx = zmq.asyncio.Context()
    sub = subscriber(ctx, pub)
    seen = Seen()
    consumer = asyncio.create_task(consume(sub, sim, seen))
    try:
        await wait_for(lambda: seen.rpi[LINEAR] > 5 and seen.rpi[SPOT] > 5, "rpi books", 30)
        await wait_for(lambda: bool(sim.conn_ids(STATUS_PATH)), "the status connection", 15)

        # system.status: each version once, a repeat and a replay after reconnect are not.
        now = int(time.time() * 1000)
        sim.post_notice(notice_id="n1", state="scheduled", begin_ms=now, end_ms=now + 60_000)
        sim.post_notice(notice_id="n1", state="scheduled", begin_ms=now, end_ms=now + 60_000)
        sim.post_notice(notice_id="n1", state="ongoing", begin_ms=now, end_ms=now + 90_000)
        await wait_for(lambda: len(seen.notices) >= 2, "notices", 15)
        (status_conn,) = sim.conn_ids(STATUS_PATH)
        assert sim.apply_fault(FaultRequest(FaultKind.DROP, conn_id=status_conn)) == 1
        await wait_for(
            lambda: bool(sim.conn_ids(STATUS_PATH)) and sim.conn_ids(STATUS_PATH) != [status_conn],
            "the status connection back",
            15,
        )

        faults: list[tuple[str, Callable[[], int], tuple[str, str]]] = [
            (
                "gap",
                lambda: sim.apply_fault(
                    FaultRequest(FaultKind.SKIP, category="linear", topic="orderbook.rpi.BTCUSDT")
                ),
                LINEAR,
            ),
            (
                "restart u=1",
                lambda: sim.apply_fault(
                    FaultRequest(FaultKind.RESTART, category="spot", topic="orderbook.rpi.ETHUSDT")
                ),
                SPOT,
            ),
            (
                "crossed",
                lambda: sim.apply_fault(
                    FaultRequest(FaultKind.CROSSED, category="spot", topic="orderbook.rpi.ETHUSDT")
                ),
                SPOT,
            ),
            (
                "malformed",
                lambda: sim.apply_fault(
                    FaultRequest(
                        FaultKind.MALFORMED, category="linear", topic="orderbook.rpi.BTCUSDT"
                    )
                ),
                LINEAR,
            ),
            (
                "drop",
                lambda: sim.apply_fault(FaultRequest(FaultKind.DROP, category="linear")),
                LINEAR,
            ),
        ]
        for name, inject, key in faults:
            before = seen.last_rpi_at.get(key, 0.0)
            assert inject() >= 1, f"fault {name} hit nothing"
            t0 = time.monotonic()
            await wait_for(
                lambda key=key, t0=t0, before=before: (
                    seen.last_rpi_at.get(key, 0.0) > max(before, t0 + 0.3)
                    and seen.state.get((*key, "rpi")) == "live"
                ),
                f"{key} rpi live again after {name}",
                15,
            )
            assert not seen.wrong, seen.wrong[:5]
        # Every trade of the quiet symbol sent so far must arrive: wait for the last one.
        sent_so_far = list(sent[SPOT])
        assert sent_so_far, "no spot trades sent"
        await wait_for(lambda: sent_so_far[-1] in seen.trades[SPOT], "the spot trades", 60)

        assert not seen.wrong, seen.wrong[:5]
        assert seen.rpi_unverifiable < sum(seen.rpi.values()) // 10
        assert seen.books > 20
        assert seen.books_unverifiable < seen.books // 20
        # The fused bbo: never back in Bybit's seq; depth 1 feeds it.
        for key, seqs in seen.bbo_seq.items():
            assert all(a < b for a, b in itertools.pairwise(seqs)), key
        assert seen.bbo_depths[LINEAR] == {1, 200}
        # Trades: split batches happened; each trade once, with Bybit's seq and RPI flag.
        assert split_batches > 0
        assert any(rpi for trades in sent.values() for _, _, rpi in trades)
        for key, got in seen.trades.items():
            ids = [t[0] for t in got]
            assert len(ids) == len(set(ids)), f"{key}: a trade published twice"
            truth = {t[0]: t for t in sent[key]}
            assert all(truth[t[0]] == t for t in got), f"{key}: seq or RPI flag differ"
        quiet = sent[SPOT]
        got = seen.trades[SPOT]
        start = quiet.index(got[0])
        assert got == quiet[start : start + len(got)]  # nothing lost on the quiet symbol
        assert start + len(got) >= len(sent_so_far)  # every one sent before the wait
        # Options: books equal their truth; trades of both strikes from publicTrade.BTC.
        assert seen.option_books > 10
        for key in (CALL, PUT):
            got, want = seen.trades[key], sent[key]
            assert got, f"no {key} trades"
            assert got == want[want.index(got[0]) :][: len(got)], key
        # Notices: the repeat and the replay after the reconnect published nothing.
        assert seen.notices == [("n1", "scheduled", now + 60_000), ("n1", "ongoing", now + 90_000)]
    finally:
        consumer.cancel()
        for service in reversed(services):
            service.stop()
        ctx.destroy(linger=0)

    # The journal: `fused` in its hub config (a JSON list), so a replay builds the same hub
    # and publishes the same fused bbo as the live one did.
    (segment, *_), _ = find_segments([tmp_path / "journal"])
    assert segment.header.hub["fused"] == [["linear", "BTCUSDT"]]
    replayed = tmp_path / "replay.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "mdgw.replay", "--out", str(replayed), str(tmp_path / "journal")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    replayed_seqs = [
        msg["bybit_seq"]
        for msg in map(orjson.loads, replayed.read_bytes().splitlines())
        if msg["channel"] == "bbo" and (msg["category"], msg["symbol"]) == LINEAR
    ]
    live = seen.bbo_seq[LINEAR]
    start = replayed_seqs.index(live[0])
    assert replayed_seqs[start : start + len(live)] == live

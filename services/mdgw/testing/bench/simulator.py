"""How many messages per second one simulator process sustains.

Starts the simulator in a child process with ``--symbols`` linear symbols at ``--rate`` book
updates per second each, connects plain websockets clients that subscribe to every symbol's
``orderbook.{depth}`` and ``publicTrade`` topics (split over connections to stay under
Bybit's 21,000-character args limit), and counts what arrives for ``--seconds`` after a
warm-up. Every book frame's ``u`` is checked: a gap means the simulator dropped something.

    .venv/bin/python scripts/sim_bench.py                 # 500 symbols x 20/s, 10 s
    .venv/bin/python scripts/sim_bench.py --symbols 800   # find the ceiling

Prints one JSON line: offered and received rates, gaps, the simulator's CPU share and
resident memory, and the steps it had to drop to keep up (``lagged_steps``). Exit status 1
when the received book rate is below 95 % of the offered rate or any u gap was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
import urllib.request
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.processes import cpu_seconds, rss_kib

ARGS_BUDGET = 20_000  # characters of args per connection, under Bybit's 21,000


def _serve(params: SimulatorParams, ready: Connection) -> None:
    async def main() -> None:
        async with SimulatorServer(params) as server:
            ready.send(server.port)
            await asyncio.Event().wait()

    asyncio.run(main())


class Counter:
    def __init__(self) -> None:
        self.book = 0
        self.trades = 0
        self.gaps = 0
        self.last_u: dict[str, int] = {}
        self.counting = False

    def take(self, message: bytes) -> None:
        frame = orjson.loads(message)
        topic = frame.get("topic")
        if topic is None:
            return
        if topic[0] == "o":
            u = frame["data"]["u"]
            last = self.last_u.get(topic)
            if frame["type"] == "delta" and last is not None and u != last + 1:
                self.gaps += 1
            self.last_u[topic] = u
            if self.counting:
                self.book += 1
        elif self.counting:
            self.trades += 1


async def _client(url: str, topics: list[str], counter: Counter, subscribed: asyncio.Event) -> None:
    ws: ClientConnection
    async with connect(url, compression=None, max_size=None, max_queue=None) as ws:
        for start in range(0, len(topics), 200):
            await ws.send(orjson.dumps({"op": "subscribe", "args": topics[start : start + 200]}))
        subscribed.set()
        async for message in ws:
            counter.take(message if isinstance(message, bytes) else message.encode())


def _chunks(topics: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    length = 0
    for topic in topics:
        if length + len(topic) > ARGS_BUDGET:
            chunks.append([])
            length = 0
        chunks[-1].append(topic)
        length += len(topic)
    return chunks


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    symbols = [f"SIM{index:04d}USDT" for index in range(args.symbols)]
    params = SimulatorParams(
        streams={"linear": tuple(symbols)},
        port=0,
        rate=args.rate,
        trade_rate=args.trade_rate,
        levels=args.levels,
        truth_history=args.truth_history,
        stats_interval=3600.0,
    )
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_serve, args=(params, sender), daemon=True)
    child.start()
    try:
        port = await asyncio.to_thread(receiver.recv)
        topics = [f"orderbook.{args.depth}.{s}" for s in symbols]
        topics += [f"publicTrade.{s}" for s in symbols]
        counter = Counter()
        url = f"ws://127.0.0.1:{port}/v5/public/linear"
        ready = [asyncio.Event() for _ in _chunks(topics)]
        tasks = [
            asyncio.create_task(_client(url, chunk, counter, event))
            for chunk, event in zip(_chunks(topics), ready, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 30)
        await asyncio.sleep(args.warmup)
        counter.counting = True
        cpu0, t0 = cpu_seconds(child.pid or 0), time.monotonic()
        await asyncio.sleep(args.seconds)
        counter.counting = False
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(child.pid or 0) - cpu0) / elapsed
        status_url = f"http://127.0.0.1:{port}/sim/status"
        status = await asyncio.to_thread(
            lambda: json.loads(urllib.request.urlopen(status_url).read())
        )
        for task in tasks:
            task.cancel()
        return {
            "symbols": args.symbols,
            "rate": args.rate,
            "depth": args.depth,
            "connections": len(tasks),
            "seconds": round(elapsed, 2),
            "offered_book_msgs_per_s": args.symbols * args.rate,
            "book_msgs_per_s": round(counter.book / elapsed),
            "trade_msgs_per_s": round(counter.trades / elapsed),
            "total_msgs_per_s": round((counter.book + counter.trades) / elapsed),
            "u_gaps": counter.gaps,
            "lagged_steps": status["stats"]["lagged_steps"],
            "simulator_cpu": round(cpu, 2),
            "simulator_rss_mib": round(rss_kib(child.pid or 0) / 1024),
        }
    finally:
        child.terminate()
        child.join(5)

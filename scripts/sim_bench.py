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
import sys

from mdgw.testing.bench.simulator import bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="book updates/s per symbol")
    parser.add_argument("--trade-rate", type=float, default=2.0)
    parser.add_argument("--depth", type=int, default=50, choices=[1, 50, 200, 1000])
    parser.add_argument("--levels", type=int, default=1500)
    parser.add_argument("--truth-history", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    print(json.dumps(result))
    ok = result["book_msgs_per_s"] >= 0.95 * result["offered_book_msgs_per_s"]
    ok = ok or args.depth != 50  # deeper topics push at most every 100-200 ms by design
    return 0 if ok and not result["u_gaps"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The book builder's hub in-process: microseconds per raw message, no sockets, no processes.

A/B use (interleave runs of the two trees, same machine, same moment)::

    .venv/bin/python -m mdgw.testing.bench.hub_inproc                  # this tree
    PYTHONPATH=/path/to/other/services .venv/bin/python -m mdgw.testing.bench.hub_inproc

The input is the throughput benchmark's: depth-50 books whose deltas cycle
(:mod:`mdgw.testing.bench.frames`), one trade frame every ``--trade-every`` frames, spread over
``--symbols`` symbols, all from one connection. Prints one JSON line: the best of
``--repeat`` runs, in CPU time of this process (``time.process_time``), which a loaded
machine disturbs less than wall-clock time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Final, TypedDict

import mdgw
from mdgw.core import wire
from mdgw.core.hub import Hub
from mdgw.testing.bench.frames import script, trade_template


class HubSettings(TypedDict):
    publish_depth: int
    resync_timeout: float
    resync_min_interval: float
    ingestor_timeout: float
    stale_after: float


# The hub of an in-process benchmark: [books]' defaults (docs/configuration.md).
HUB_SETTINGS: Final[HubSettings] = {
    "publish_depth": 25,
    "resync_timeout": 5.0,
    "resync_min_interval": 1.0,
    "ingestor_timeout": 3.0,
    "stale_after": 60.0,
}


def messages(symbols: int, count: int, trade_every: int) -> list[bytes]:
    encode = wire.RawEncoder("bench", "linear")
    out = [encode.conn_up(1, 1)]
    seq = 0
    for i in range(symbols):
        seq += 1
        out.append(encode.data(1, seq, 1, script(i).snapshot(0, 1)))
    ks = [0] * symbols
    trades = [0] * symbols
    for n in range(count):
        i = n % symbols
        seq += 1
        if trade_every and n % trade_every == trade_every - 1:
            trades[i] += 1
            frame = trade_template(i) % (1, 1, trades[i], trades[i])
        else:
            ks[i] += 1
            frame = script(i).delta(ks[i], 1)
        out.append(encode.data(1, seq, 1, frame))
    return out


def bench_hub() -> Hub:
    """A hub with the builder's default book settings and a counting clock."""
    return Hub(**HUB_SETTINGS, clock_ns=itertools.count().__next__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--trade-every", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    msgs = messages(args.symbols, args.messages, args.trade_every)
    best = float("inf")
    for _ in range(args.repeat):
        hub = bench_hub()
        on_raw = hub.on_raw
        started = time.process_time()
        for msg in msgs:
            on_raw(msg, 0.0)
            if len(hub.outbox) > 4096:
                hub.outbox.clear()
        elapsed = time.process_time() - started
        best = min(best, elapsed)
        assert hub.stats.gaps == 0 and hub.stats.malformed == 0, hub.stats
    print(
        json.dumps(
            {
                "mdgw": mdgw.__file__,
                "messages": len(msgs),
                "us_per_message": round(best / len(msgs) * 1e6, 3),
                "books_out": hub.stats.books_out,
                "bbo_out": hub.stats.bbo_out,
                "trades_out": hub.stats.trades_out,
            }
        )
    )


if __name__ == "__main__":
    main()

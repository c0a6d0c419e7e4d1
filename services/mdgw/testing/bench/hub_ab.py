"""In-process A/B of the hub's per-frame path: this checkout against another one.

    git worktree add /tmp/mdgw-base main      # or git archive main | tar -x -C /tmp/mdgw-base
    .venv/bin/python -m mdgw.testing.bench.hub_ab --base /tmp/mdgw-base/services --reps 15

Both ``Hub`` classes are loaded into one process and fed the same envelopes (20 depth-50
books of :mod:`mdgw.testing.bench.frames`, 1,500 deltas each), alternating rep by rep, and each rep
is timed in thread CPU time: on a shared machine that is far steadier than wall time.
``single``: one source; ``ab``: every frame from two connections (an A/B feed; this
checkout only, since a hub without arbitration resyncs on the second source). Prints the
minimum and the median per envelope.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from mdgw.core.bybit_spec import CATEGORIES
from mdgw.testing.bench.frames import script
from mdgw.testing.bench.hub_inproc import HUB_SETTINGS
from mdgw.testing.oracles import encode_raw

HERE = Path(__file__).resolve().parents[3]  # this checkout's services/
N_SYMBOLS, N_DELTAS = 20, 1500


def _load(root: Path) -> Any:
    for name in [m for m in sys.modules if m == "mdgw" or m.startswith("mdgw.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module("mdgw.core.hub").Hub
    finally:
        sys.path.remove(str(root))


def _envelopes(sources: int) -> list[bytes]:
    # The envelope's bytes are the same in both checkouts: built by this one's oracle.
    category = CATEGORIES.index("linear")
    seqs = dict.fromkeys(range(1, sources + 1), 0)
    out: list[bytes] = []

    def add(frame: bytes) -> None:
        for conn in seqs:
            seqs[conn] += 1
            out.append(
                encode_raw(
                    0,
                    ingestor=b"bench",
                    category=category,
                    conn_id=conn,
                    seq=seqs[conn],
                    recv_ns=time.time_ns(),
                    frame=frame,
                )
            )

    books = [script(i) for i in range(N_SYMBOLS)]
    for book in books:
        add(book.snapshot(0, 1))
    for k in range(1, N_DELTAS + 1):
        for book in books:
            add(book.delta(k, 1 + k))
    return out


def _run(hub_class: Any, envelopes: list[bytes]) -> float:
    hub = hub_class(**HUB_SETTINGS, clock_ns=time.time_ns)
    on_raw = hub.on_raw
    started = time.thread_time_ns()
    for i, msg in enumerate(envelopes):
        on_raw(msg, 1.0)
        if i & 1023 == 0:
            hub.outbox.clear()
            hub.latencies.clear()
    elapsed = time.thread_time_ns() - started
    if hub.stats.resyncs or hub.stats.books_out != N_SYMBOLS * (N_DELTAS + 1):
        raise SystemExit(f"the hub did not take every frame: {hub.stats}")
    return elapsed / len(envelopes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout's services/")
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    single, double = _envelopes(1), _envelopes(2)
    base_hub = _load(args.base)
    new_hub = _load(HERE)
    results: dict[str, list[float]] = {"base single": [], "this single": [], "this ab": []}
    for _ in range(args.reps):
        results["base single"].append(_run(base_hub, single))
        results["this single"].append(_run(new_hub, single))
        results["this ab"].append(_run(new_hub, double))
    for name, values in results.items():
        print(
            f"{name:12s} ns per envelope: min {min(values):7.0f}  "
            f"median {statistics.median(values):7.0f}  (n={len(values)})"
        )


if __name__ == "__main__":
    main()

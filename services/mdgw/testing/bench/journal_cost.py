"""The journal's CPU cost in one process: a hub fed a journal's frames, journaled or not.

    python -m mdgw.testing.bench.journal_cost JOURNAL_SEGMENT [--seconds 3] [--reps 4]

Replays the ``RAW`` and ``TICK`` records of a segment into fresh hubs in a loop, as the
builder's ``_drain`` and ``_pump`` call them, for ``--seconds``; with the journal on, each
record is also added to a real :class:`~mdgw.book_builder.journal.Journal` (its writer
thread compressing to a temporary directory) and handed over every 100 ms. Runs
alternate off/on, then on/off (ABBA). Prints frames per second of wall time and per
CPU-second of the process (writer thread included), and the medians' ratios.

No sockets: this isolates what the journal adds to the hub's own work, which figure 1 of
``make bench`` measures through real processes (docs/performance.md).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mdgw.book_builder.journal import HAND_OVER_S, Journal
from mdgw.core.hub import Hub
from mdgw.core.journal_format import InputKind, Record
from mdgw.replay.reader import SegmentReader, find_segments
from mdgw.runtime.settings import JournalConfig

_RAW = int(InputKind.RAW)
_TICK = int(InputKind.TICK)


def run(
    records: list[Record], hub_config: dict[str, object], journaled: bool, seconds: float
) -> tuple[float, float]:
    """(frames per wall second, frames per CPU-second of the process) of one run."""
    directory = Path(tempfile.mkdtemp(prefix="mdgw-journal-cost-"))
    journal = None
    if journaled:
        journal = Journal(JournalConfig(enabled=True, dir=str(directory)), hub_config, {})
        journal.open()
        journal.start()
    frames = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    handed = start
    try:
        while time.perf_counter() - start < seconds:
            hub = Hub(**hub_config, clock_ns=time.time_ns)  # type: ignore[arg-type]
            for record in records:
                now = record.now
                if record.kind == _RAW:
                    batch: list[bytes] = []
                    taken = batch.append
                    for item in record.items:
                        taken(item)
                        hub.on_raw(item, now)
                    frames += len(batch)
                    if journal is not None:
                        journal.add(_RAW, now, batch)
                else:
                    hub.tick(now)
                    if journal is not None:
                        journal.add(_TICK, now)
                hub.outbox.clear()
                hub.events.clear()
                hub.control.clear()
                clock = time.perf_counter()
                if journal is not None and clock - handed >= HAND_OVER_S:
                    journal.hand_over()
                    handed = clock
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    finally:
        if journal is not None:
            journal.close(timeout=60)
        shutil.rmtree(directory, ignore_errors=True)
    return frames / wall, frames / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("segment", type=Path, help="a journal segment (*.mdj) to take frames from")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=4)
    args = parser.parse_args()
    (segment,), _ = find_segments([args.segment])
    records = [r for r in SegmentReader(segment) if r.kind in (_RAW, _TICK)]
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for rep in range(args.reps):
        for journaled in (False, True) if rep % 2 == 0 else (True, False):
            results[journaled].append(run(records, segment.header.hub, journaled, args.seconds))
    for journaled, rows in results.items():
        label = "journal on " if journaled else "journal off"
        print(
            f"{label}: frames/s {[round(w) for w, _ in rows]}, "
            f"per CPU-s {[round(c) for _, c in rows]}"
        )
    wall = [statistics.median(x[0] for x in results[j]) for j in (False, True)]
    cpu = [statistics.median(x[1] for x in results[j]) for j in (False, True)]
    print(f"on / off: frames/s {wall[1] / wall[0]:.3f}, per CPU-second {cpu[1] / cpu[0]:.3f}")


if __name__ == "__main__":
    main()

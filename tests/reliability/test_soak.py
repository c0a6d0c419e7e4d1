"""A short soak (``make soak`` is the 30-minute one): the same checks, for about 24 s.

``scripts/soak.py``: the in-process simulator, real book_builder and ingestor processes,
about 1,500 frames per second here (5,000 for 5 minutes with ``RELIABILITY_LONG=1``) and a
fault every 3 s, each of the seven once: skip, crossed, malformed, restart, oversized, drop
and silence. No wrong book, no seq hole, every fault's book live again within 15 s, RSS
flat after the warm-up, log lines bounded by the faults' state changes and never one per
frame, and book_builder keeping up with what the simulator sent.

The rate is the simulator's, which runs in this process: on a busy machine it offers fewer
frames per second than asked. What a user relies on is that the gateway takes every frame
it is offered, so that is what is checked (``keep_up``: book_builder's frames over the
simulator's, at least 90 %, a dropped connection losing a few), not a frames/s floor.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from mdgw.testing.config import LONG
from mdgw.testing.soak import Options, soak

pytestmark = pytest.mark.e2e


async def test_short_soak_publishes_no_wrong_book_with_flat_memory_and_bounded_logs(
    tmp_path: Path,
) -> None:
    if LONG:
        options = Options(minutes=5, frames_per_s=5000, fault_every=10, sample=0.05)
    else:
        options = Options(
            minutes=0.4, frames_per_s=1500, fault_every=3, sample=0.2, stats_interval=5
        )
    report = await soak(options, tmp_path)
    summary = {
        k: v
        for k, v in asdict(report).items()
        if k not in ("options", "rss_kib", "faults", "wrong", "seq_errors")
    }
    print(f"soak: {summary}")
    print("faults:", [(f.kind, f.key, f.recovered_s) for f in report.faults])
    assert report.ok, report.problems
    assert report.keep_up >= 0.9, (report.keep_up, report.offered_per_s)
    assert len(report.faults) >= 5

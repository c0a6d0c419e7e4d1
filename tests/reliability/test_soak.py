"""A short soak (``make soak`` is the 30-minute one): the same checks, for about 30 s.

``scripts/soak.py``: the in-process simulator, real book_builder and ingestor processes,
about 1,500 frames per second here (5,000 for 5 minutes with ``RELIABILITY_LONG=1``) and a
fault every 4 s, cycling through skip, crossed, malformed, restart, oversized, drop and
silence. No wrong book, no seq hole, every fault's book live again within 15 s, RSS flat
after the warm-up, log lines bounded by the faults' state changes and never one per frame.
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
        options = Options(minutes=0.5, frames_per_s=1500, fault_every=4, sample=0.2)
    report = await soak(options, tmp_path)
    summary = {
        k: v
        for k, v in asdict(report).items()
        if k not in ("options", "rss_kib", "faults", "wrong", "seq_errors")
    }
    print(f"soak: {summary}")
    print("faults:", [(f.kind, f.key, f.recovered_s) for f in report.faults])
    assert report.ok, report.problems
    assert report.frames_per_s > options.frames_per_s * 0.7
    assert len(report.faults) >= 5

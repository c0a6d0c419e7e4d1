"""Small helpers for the periodic stats lines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def percentiles(samples: Sequence[int], points: Iterable[float]) -> list[float | None]:
    """Nearest-rank percentiles of ``samples`` (None each when there are none)."""
    if not samples:
        return [None for _ in points]
    ordered = sorted(samples)
    last = len(ordered) - 1
    return [float(ordered[min(last, max(0, round(p / 100 * last)))]) for p in points]

"""How many examples a property test (Hypothesis) runs.

``make test`` runs the whole suite on the compiled hot path, then ``tests/core`` again on the
pure-Python fallback (``MDGW_PURE=1``, :mod:`mdgw.compiled`). The second run executes the
very same ``.py`` source the first one compiled: it is there to show the fallback imports and
behaves alike, not to search the input space a second time. So on it each property test runs
a third of its examples (at least 20), which keeps ``make test`` within its time budget.
"""

from __future__ import annotations

import os

from mdgw.compiled import PURE_ENV

__all__ = ["examples"]


def examples(n: int) -> int:
    """*n*, or a third of it (at least 20) when the pure-Python fallback is forced."""
    if os.environ.get(PURE_ENV) == "1":
        return max(20, n // 3)
    return n

"""Real-process tests of /metrics, /health and `mdgw top` against the in-process simulator.

The harness is :mod:`mdgw.testing` (the ``rundir`` fixture is in tests/conftest.py); the
helpers these tests share are in ``observability_helpers.py`` next to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

"""Real-process tests of /metrics, /health and `mdgw top` against the in-process simulator.

The harness is ``scripts/gateway_stack.py`` (as for tests/reliability), made importable here.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "scripts", Path(__file__).parent):  # gateway_stack, observability_helpers
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture
def rundir() -> Iterator[Path]:
    """A short private directory for ipc sockets (paths are limited to 107 bytes)."""
    from gateway_stack import short_tempdir

    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

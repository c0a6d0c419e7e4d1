"""Fixtures and settings for every test directory. The harness itself is :mod:`mdgw.testing`.

Hypothesis' per-example deadline (200 ms by default) measures wall-clock time, so on a
shared, busy 2-core machine (CI) a slow example fails a test that is right. The suite's
property tests bound their work by ``max_examples`` instead: no deadline, for every test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from mdgw.testing.endpoints import short_tempdir

settings.register_profile("mdgw", deadline=None)
settings.load_profile("mdgw")


@pytest.fixture
def rundir() -> Iterator[Path]:
    """A short private directory for ipc sockets (paths are limited to 107 bytes)."""
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

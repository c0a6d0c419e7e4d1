"""Shared set-up of the reliability tests: real processes, the in-process simulator.

The harness itself is ``scripts/gateway_stack.py`` (also used by ``make soak``), made
importable here. ``RELIABILITY_LONG=1`` runs the long versions (builder down 30 s, fuzzing
2 minutes, a longer soak); ``make test`` runs the short ones.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: failure-mode tests with real processes (tests/reliability)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def rundir() -> Iterator[Path]:
    """A short private directory for ipc sockets (paths are limited to 107 bytes)."""
    from mdgw.testing.stack import short_tempdir

    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

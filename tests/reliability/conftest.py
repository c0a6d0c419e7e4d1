"""Shared set-up of the reliability tests: real processes, the in-process simulator.

The harness itself is :mod:`mdgw.testing` (also used by ``make soak``, the benchmarks and
the fuzzer); the ``rundir`` fixture is in tests/conftest.py. ``RELIABILITY_LONG=1`` runs
the long versions (builder down 30 s, fuzzing 2 minutes, a longer soak); ``make test`` runs
the short ones.
"""

from __future__ import annotations

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

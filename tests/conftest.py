"""Fixtures and settings for every test directory. The harness itself is :mod:`mdgw.testing`.

Hypothesis' per-example deadline (200 ms by default) measures wall-clock time, so on a
shared, busy 2-core machine (CI) a slow example fails a test that is right. The suite's
property tests bound their work by ``max_examples`` instead: no deadline, for every test.

``ctx`` is a ZeroMQ context whose sockets the teardown closes (a test may override it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
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


class _TrackingContext(zmq.Context):  # type: ignore[type-arg]
    """A context that keeps its sockets until the test's teardown closes them.

    Tests open sockets as locals; without a reference here they would be garbage-collected
    open when the test returns (a ResourceWarning, an error under filterwarnings) before the
    fixture's teardown gets to close them.
    """

    opened: list[zmq.Socket[bytes]]

    def socket(self, *args: Any, **kwargs: Any) -> Any:
        sock = super().socket(*args, **kwargs)
        self.opened.append(sock)
        return sock


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    c = _TrackingContext()
    c.opened = []
    yield c
    for sock in c.opened:
        sock.close(linger=0)
    c.destroy(linger=0)

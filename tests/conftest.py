"""Fixtures for every test directory. The harness itself is :mod:`mdgw.testing`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdgw.testing.endpoints import short_tempdir


@pytest.fixture
def rundir() -> Iterator[Path]:
    """A short private directory for ipc sockets (paths are limited to 107 bytes)."""
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

"""A private copy of the repo's run-time layout, for tests that run the real supervisord.

deploy/supervisord.conf takes every path from its own place (``%(here)s/..``), so one
supervisord per checkout. A test gets its own "checkout": a temporary directory holding
byte-identical copies of deploy/, config/, the Makefile and the files its venv stamp is
made of, with symlinks to the repo's .venv and scripts/. Its var/ (control socket, logs,
ipc sockets) is its own; its tcp ports are reserved ones, given to the services through
MDGW_* environment variables over config/demo.toml, as a user would override a key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdgw.testing.endpoints import reserve_port

REPO = Path(__file__).parents[2]
BIN = REPO / ".venv" / "bin"
COPIED = ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml")
LINKED = (".venv", "scripts")


@dataclass
class Checkout:
    root: Path
    env: dict[str, str]
    pub: str
    snapshot: str
    simulator_port: int

    @property
    def conf(self) -> Path:
        return self.root / "deploy" / "supervisord.conf"

    @property
    def var(self) -> Path:
        return self.root / "var"

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``supervisorctl -c deploy/supervisord.conf ARGS`` from the checkout's root."""
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", "deploy/supervisord.conf", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def make_checkout(base: Path) -> Checkout:
    if not (BIN / "python").exists() or not (BIN / "supervisord").exists():
        pytest.skip("needs the project's .venv (make venv)")
    root = base / "co"
    root.mkdir()
    for folder in ("deploy", "config"):
        shutil.copytree(REPO / folder, root / folder)
    for name in COPIED:
        shutil.copy2(REPO / name, root / name)
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    # Held by this process until it ends (mdgw.testing.endpoints): supervisord restarts a
    # killed book_builder or simulator on the same ports.
    pub, snapshot, simulator = reserve_port(), reserve_port(), reserve_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDGW_", "MAKE"))}
    env.update(
        MDGW_ZMQ__PUB=f"tcp://127.0.0.1:{pub}",
        MDGW_ZMQ__SNAPSHOT=f"tcp://127.0.0.1:{snapshot}",
        MDGW_BYBIT__WS_URL=f"ws://127.0.0.1:{simulator}/v5/public",
        MDGW_SIMULATOR__PORT=str(simulator),
        # Quicker than the demo's defaults, for a short test.
        MDGW_BYBIT__BACKOFF_INITIAL="0.2",
        MDGW_BYBIT__BACKOFF_MAX="2",
        MDGW_LOG__STATS_INTERVAL="1",
        # No fixed metrics ports (config/demo.toml's 9120/9121): tests run side by side.
        MDGW_METRICS__BOOK_BUILDER="0",
        MDGW_METRICS__INGESTOR="0",
    )
    return Checkout(
        root,
        env,
        f"tcp://127.0.0.1:{pub}",
        f"tcp://127.0.0.1:{snapshot}",
        simulator,
    )


@pytest.fixture(scope="module")
def checkout_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Checkout]:
    return lambda: make_checkout(tmp_path_factory.mktemp("checkout"))

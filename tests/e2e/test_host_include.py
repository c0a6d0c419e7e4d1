"""docs/operations.md "Under the host's supervisord", as documented, with a real supervisord.

The "host" is a supervisord of the test's own (its own conf, socket and conf.d/), which
includes the file the documented ``sed`` command makes from deploy/mdgw.conf. The only
changes to the documented command: the checkout's path for ``/opt/mdgw`` and this test's
user for ``mdgw``. The three programs must reach RUNNING and log into the checkout's var/.
"""

from __future__ import annotations

import getpass
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
BIN = REPO / ".venv" / "bin"
WAIT = REPO / "scripts" / "supervisor_wait.py"


def documented_sed() -> str:
    docs = (REPO / "docs" / "operations.md").read_text()
    section = docs[docs.index("### Under the host's supervisord") :]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block, "no command block in 'Under the host's supervisord'"
    command = block.group(1).split("| sudo tee")[0]
    assert command.startswith("sed "), command
    return command.replace("\\\n", " ")


def test_the_programs_run_under_a_host_supervisord(
    checkout_factory: Callable[[], Any], tmp_path: Path
) -> None:
    checkout = checkout_factory()
    (checkout.var / "log").mkdir(parents=True)
    (checkout.var / "run").mkdir(mode=0o700)
    command = documented_sed().replace("/opt/mdgw", str(checkout.root))
    command = command.replace("user=mdgw", f"user={getpass.getuser()}")
    made = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True, timeout=30
    )
    assert "%(here)s" not in made.stdout
    assert made.stdout.count(f"user={getpass.getuser()}") == 3

    host = tmp_path / "host"
    (host / "conf.d").mkdir(parents=True)
    (host / "conf.d" / "mdgw.conf").write_text(made.stdout)
    (host / "supervisord.conf").write_text(
        f"[supervisord]\nlogfile={host}/supervisord.log\npidfile={host}/supervisord.pid\n"
        f"[unix_http_server]\nfile={host}/supervisor.sock\nchmod=0700\n"
        f"[supervisorctl]\nserverurl=unix://{host}/supervisor.sock\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        "[include]\nfiles = conf.d/*.conf\n"
    )
    ctl = [str(BIN / "supervisorctl"), "-c", str(host / "supervisord.conf")]
    env = {**checkout.env, "MDGW_CONFIG": str(checkout.root / "config" / "demo.toml")}
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-n", "-c", str(host / "supervisord.conf")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait = subprocess.run(
            [
                sys.executable,
                str(WAIT),
                "-c",
                str(host / "supervisord.conf"),
                "--timeout",
                "40",
                "running",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        status = subprocess.run([*ctl, "status"], capture_output=True, text=True, check=False)
        assert wait.returncode == 0, wait.stderr + status.stdout
        running = re.findall(r"^(mdgw:\w+) +RUNNING", status.stdout, re.M)
        assert sorted(running) == ["mdgw:book_builder", "mdgw:ingestor", "mdgw:printer"]
        for program in ("book_builder", "ingestor", "printer"):
            assert (checkout.var / "log" / f"{program}.log").exists(), program
    finally:
        subprocess.run([*ctl, "shutdown"], capture_output=True, check=False, timeout=30)
        try:
            supervisord.wait(timeout=30)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait()
    assert supervisord.returncode == 0

"""deploy/prometheus.yml and deploy/alerts.yml: promtool checks them, when it is installed.

promtool comes with Debian's `prometheus` package (.ci/run installs it when it can). Without
it the promtool tests skip, saying so; the checks that need no promtool run anyway.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not on PATH (apt-get install prometheus): "
    "deploy/prometheus.yml and deploy/alerts.yml were NOT checked",
)


def promtool(*args: str) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_promtool
def test_promtool_check_config() -> None:
    assert "SUCCESS" in promtool("check", "config", "deploy/prometheus.yml")


@needs_promtool
def test_promtool_check_rules() -> None:
    assert "SUCCESS: 10 rules found" in promtool("check", "rules", "deploy/alerts.yml")


@needs_promtool
def test_promtool_alert_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "deploy/alerts_test.yml")


def test_alerts_use_only_metrics_the_services_export() -> None:
    rules = (DEPLOY / "alerts.yml").read_text()
    used = set(re.findall(r"\b(mdgw_[a-z_]+)", rules))
    source = "".join(p.read_text() for p in (ROOT / "services" / "mdgw").rglob("*metrics.py"))
    exported = set(re.findall(r'"(mdgw_[a-z_]+)"', source))
    bases = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert bases <= exported, bases - exported


def test_every_alert_is_explained_in_operations_md() -> None:
    alerts = re.findall(r"- alert: (\w+)", (DEPLOY / "alerts.yml").read_text())
    assert len(alerts) == 10
    operations = (ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"#### {alert}" in operations, f"docs/operations.md does not explain {alert}"
        assert f"docs/operations.md#{alert.lower()}" in (DEPLOY / "alerts.yml").read_text()

"""The printer's /metrics and /health, off by default, on with --metrics-port (a real process)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from mdgw.testing.processes import ROOT, clean_env
from mdgw.testing.scrape import http_get


def test_printer_serves_metrics_and_says_503_when_nothing_arrives(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[zmq]\npub = "ipc://{tmp_path}/nobody.sock"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdgw.printer", "--no-snapshot", "--metrics-port", "auto"],
        cwd=ROOT,
        env=clean_env(MDGW_CONFIG=str(config), MDGW_METRICS__UNHEALTHY_AFTER="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        match = re.search(r"\(port (\d+)\)", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}"
        status, body = http_get(f"{base}/metrics")
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"mdgw_printer_seq_holes", "mdgw_printer_messages", "process_cpu_seconds"} <= names
        deadline = time.monotonic() + 15
        while (got := http_get(f"{base}/health"))[0] != 503:
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        assert orjson.loads(got[1])["status"] == "degraded"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()

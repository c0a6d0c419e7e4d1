"""The printer's /metrics and /health, off by default, on with --metrics-port (a real process)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import zmq
from prometheus_client.parser import text_string_to_metric_families

from mdgw.core import wire
from mdgw.testing.processes import ROOT, clean_env
from mdgw.testing.samples import sample_book
from mdgw.testing.scrape import http_get

T = 15.0  # seconds: generous deadline for anything a test waits for (a busy machine)


@contextmanager
def printer(config: Path, unhealthy_after: float) -> Iterator[str]:
    """A printer on *config* (no snapshots) with its endpoint on a free port: its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdgw.printer", "--no-snapshot", "--metrics-port", "auto"],
        cwd=ROOT,
        env=clean_env(MDGW_CONFIG=str(config), MDGW_METRICS__UNHEALTHY_AFTER=str(unhealthy_after)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        match = re.search(r"\(port (\d+)\)", line)
        assert match, line
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def health_when(base: str, status: int) -> dict[str, Any]:
    """The body of the first /health answer with *status* (asked every 0.1 s, up to T)."""
    deadline = time.monotonic() + T
    while (got := http_get(f"{base}/health"))[0] != status:
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    body: dict[str, Any] = orjson.loads(got[1])
    return body


def test_printer_serves_metrics_and_says_503_when_nothing_arrives(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[zmq]\npub = "ipc://{tmp_path}/nobody.sock"\n')
    with printer(config, unhealthy_after=1) as base:
        status, body = http_get(f"{base}/metrics")
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"mdgw_printer_seq_holes", "mdgw_printer_messages", "process_cpu_seconds"} <= names
        health = health_when(base, 503)
        assert health["status"] == "degraded"
        assert (health["messages"], health["last_message_age_s"]) == (0, None)
        [problem] = health["problems"]
        assert re.fullmatch(r"no message in \d+\.\ds since start", problem), problem


def test_printer_health_is_ok_while_messages_come_and_names_the_silence(tmp_path: Path) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)  # shows the printer's subscription: then it listens
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    config = tmp_path / "gateway.toml"
    config.write_text(f'[zmq]\npub = "tcp://127.0.0.1:{port}"\n')
    topic = wire.topic("book", "linear", "BTCUSDT")
    try:
        with printer(config, unhealthy_after=2) as base:
            assert pub.poll(int(T * 1000)), "the printer did not subscribe"
            assert pub.recv()[:1] == b"\x01"
            # A book every 0.1 s until /health has seen one: 200, and no problems.
            seq = 0
            deadline = time.monotonic() + T
            while True:
                seq += 1
                pub.send_multipart([topic, sample_book(seq=seq)])
                status, body = http_get(f"{base}/health")
                health = orjson.loads(body)
                if status == 200 and health["messages"]:
                    break
                assert time.monotonic() < deadline, (status, health)
                time.sleep(0.1)
            assert health["status"] == "ok"
            assert "problems" not in health
            assert health["last_message_age_s"] < 2.0
            assert (health["seq_holes"], health["unhealthy_after"]) == (0, 2.0)
            # Then nothing: 503 once the last book is older than unhealthy_after.
            health = health_when(base, 503)
            assert health["status"] == "degraded"
            assert health["messages"] >= 1 and health["last_message_age_s"] >= 2.0
            [problem] = health["problems"]
            match = re.fullmatch(r"no message for (\d+\.\d)s", problem)
            assert match, problem
            assert float(match.group(1)) >= 2.0
    finally:
        pub.close()
        ctx.term()

"""``zmq.hwm`` below its floor: each service that uses it warns once at start, and runs on.

Real processes (book_builder, ingestor, printer) on one generated config; the ingestor's
websocket leads to a reserved port where nobody listens, which does not matter here.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mdgw.runtime.zmqsock import BUILDER_DRAIN_BATCH, HWM_FLOOR
from mdgw.testing.config import Stream
from mdgw.testing.endpoints import reserve_port
from mdgw.testing.gateway import Gateway
from mdgw.testing.processes import ROOT, clean_env

T = 30.0  # seconds: generous deadline for a start on a busy machine


def test_the_floor_is_one_drained_batch_of_books_and_bbos() -> None:
    assert HWM_FLOOR == 2 * BUILDER_DRAIN_BATCH == 4096  # docs/reliability.md says "about 4,096"


@pytest.mark.parametrize("hwm", [1000, None], ids=["hwm=1000", "default"])
def test_each_service_warns_once_at_start_when_zmq_hwm_is_below_the_floor(
    hwm: int | None, rundir: Path, tmp_path: Path
) -> None:
    gw = Gateway(
        rundir,
        tmp_path,
        [Stream("linear", "BTCUSDT", 50)],
        ws_url=f"ws://127.0.0.1:{reserve_port()}/v5/public",
        sections={"zmq": {"hwm": hwm}} if hwm is not None else None,
    )
    printer_err = tmp_path / "printer.err"
    gw.start()
    printer = None
    try:
        with printer_err.open("wb") as err:
            printer = subprocess.Popen(
                [sys.executable, "-m", "mdgw.printer", "--no-snapshot", "--metrics-port", "auto"],
                cwd=ROOT,
                env=clean_env(MDGW_CONFIG=str(gw.config)),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        # Each service has started (the printer: its metrics line comes after the check).
        gw.builder.wait_event("book_builder_started", T)
        gw.ingestor.wait_event("ingestor_started", T)
        deadline = time.monotonic() + T
        while "metrics:" not in printer_err.read_text():
            assert printer.poll() is None, printer_err.read_text()
            assert time.monotonic() < deadline, printer_err.read_text()
            time.sleep(0.05)
        warned = {
            "book_builder": gw.builder.events("zmq_hwm_below_floor"),
            "ingestor": gw.ingestor.events("zmq_hwm_below_floor"),
        }
        printer_warned = [
            line for line in printer_err.read_text().splitlines() if "zmq_hwm_below_floor" in line
        ]
        if hwm is None:
            assert warned == {"book_builder": [], "ingestor": []}
            assert printer_warned == []
        else:
            for service, lines in warned.items():
                [line] = lines
                assert (line["level"], line["service"]) == ("warning", service)
                assert (line["hwm"], line["floor"]) == (hwm, HWM_FLOOR), line
                assert line["risk"], line
            assert printer_warned == [
                f"printer: warning: zmq.hwm {hwm} is below {HWM_FLOOR} (zmq_hwm_below_floor): "
                "this subscriber's queue holds less than one burst of book_builder's (up to "
                f"{HWM_FLOOR} messages at once); with book_builder's zmq.hwm as low, being a "
                "moment behind costs seq holes"
            ]
        # A warning, not an exit: all three run on.
        assert gw.builder.alive and gw.ingestor.alive and printer.poll() is None
    finally:
        if printer is not None:
            printer.terminate()
            printer.wait(10)
        gw.stop()

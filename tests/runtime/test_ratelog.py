"""RateLimitedLog: one line per event and subject per interval, the rest counted."""

from __future__ import annotations

from structlog.testing import capture_logs

from mdgw.runtime.logging import get_logger
from mdgw.runtime.ratelog import RateLimitedLog


def test_repeats_are_counted_per_subject_and_reported() -> None:
    now = [0.0]
    with capture_logs() as logs:
        log = RateLimitedLog(get_logger(), interval=10.0, clock=lambda: now[0])
        for _ in range(1000):
            log.emit("malformed_frame", {"category": "linear", "topic": "orderbook.50.X"})
        # Same topic name, other category: another subject, logged.
        log.emit("malformed_frame", {"category": "spot", "topic": "orderbook.50.X"})
        log.emit("book_live", {"category": "linear", "topic": "orderbook.50.X"})
        log.flush_suppressed()
        now[0] = 10.5
        log.emit("malformed_frame", {"category": "linear", "topic": "orderbook.50.X"})
        log.flush_suppressed()  # nothing suppressed since the last flush: no line
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("malformed_frame", "warning"),
        ("malformed_frame", "warning"),
        ("book_live", "info"),
        ("log_lines_suppressed", "warning"),
        ("malformed_frame", "warning"),
    ]
    assert logs[3]["counts"] == {"malformed_frame": 999}

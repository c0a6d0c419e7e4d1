"""Bounded logging of events that bad input can repeat at line rate.

A flood of malformed frames must not become a flood of log lines: the first
occurrence of an event for one subject (topic, ingestor, ...) is logged with its
context, repeats within ``interval`` seconds are counted, and the counts are logged
in one line by :meth:`RateLimitedLog.flush_suppressed` (called with the stats line).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

# Events that mean something is wrong are warnings; the rest (recoveries,
# connections coming and going) are info.
WARNING_EVENTS = frozenset(
    {
        "bad_envelope",
        "malformed_frame",
        "sequence_hole",
        "source_gap",
        "source_failover",
        "book_resyncing",
        "book_stale",
        "ingestor_lost",
        "connection_down",
        "snapshot_request_rejected",
        "control_message_rejected",
        "unknown_frame",
        "internal_error",
    }
)
_SUBJECT_KEYS = ("topic", "symbol", "ingestor", "conn_id", "category")


class RateLimitedLog:
    def __init__(
        self,
        log: structlog.typing.FilteringBoundLogger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[str, int] = {}

    def emit(self, event: str, fields: Mapping[str, Any]) -> bool:
        """Log ``event`` unless the same event for the same subject was just logged."""
        subject = "|".join(str(fields.get(k, "")) for k in _SUBJECT_KEYS)
        key = (event, subject)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return False
        if len(self._last) > 10_000:  # subjects come from input: keep the table bounded
            self._last.clear()
        self._last[key] = now
        if event in WARNING_EVENTS:
            self._log.warning(event, **fields)
        else:
            self._log.info(event, **fields)
        return True

    def flush_suppressed(self) -> None:
        """One line with the counts of what was not logged since the last call."""
        if self._suppressed:
            self._log.warning("log_lines_suppressed", counts=dict(self._suppressed))
            self._suppressed.clear()

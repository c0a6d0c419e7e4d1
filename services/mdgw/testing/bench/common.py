"""What the benchmark's driver and its helper processes share: progress lines, a stop flag."""

from __future__ import annotations

import signal
import sys
import time

__all__ = ["StopFlag", "progress"]

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (stdout is for the table)."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


class StopFlag:
    """False until SIGTERM or SIGINT arrives: for the helpers' own plain loops."""

    def __init__(self) -> None:
        self._set = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set

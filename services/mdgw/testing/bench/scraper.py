"""A Prometheus stand-in for the benchmarks: GET a /metrics URL at a fixed interval.

Runs in a thread of the benchmark driver; keeps each scrape's start time, duration and
status so the figure can count the scrapes inside its measurement window.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any


class Scraper:
    def __init__(self, url: str, interval: float = 1.0, timeout: float = 5.0) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.done: list[tuple[float, float, int]] = []  # (wall start, seconds, status)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 1)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            started, wall = time.monotonic(), time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            self.done.append((wall, time.monotonic() - started, status))
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def result(self, start: float, end: float) -> dict[str, Any]:
        """Scrapes whose start falls in [start, end] (wall-clock seconds)."""
        inside = [d for d in self.done if start <= d[0] <= end]
        return {
            "total": len(self.done),
            "in_window": len(inside),
            "failed": sum(1 for d in self.done if d[2] != 200),
            "ms": [round(d[1] * 1000, 2) for d in inside],
        }

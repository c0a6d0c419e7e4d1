"""REST snapshots of ``orderbook.full`` books, fetched for the book builder.

Bybit's full book comes as deltas only; the book starts from ``GET
/v5/market/full_orderbook`` (:mod:`mdgw.core.full_book`). The fetch lives here, in the
ingestor, and not in the builder, because:

- the ingestor is the process that talks to Bybit: its endpoints, its rate limits and its
  failures (timeouts, 5xx) belong with the websockets, retried with the same backoff;
- the builder stays free of network I/O on its hot path and remains the only place books
  are assembled: the ingestor only fetches bytes and forwards them, as a ``snapshot`` frame
  of the topic, on the very connection that carries its deltas, in order with them, so the
  builder's sync sees snapshot and deltas exactly as they arrived;
- the builder already decides when a book needs a snapshot and says so with a resync
  request; for a full topic the ingestor answers it with a fetch instead of a resubscribe.

The fetch never blocks a socket reader: it runs in a worker thread (``urllib``), one request
at a time, at most ``rest_max_per_second`` (Bybit allows 600 per 5 s per IP), each with
``rest_timeout``, retried with exponential backoff and jitter on a timeout, a connection
error, an HTTP 5xx or 429, or an answer that is not a usable snapshot; after
:data:`MAX_ATTEMPTS` it gives up (the builder asks again after its resync timeout).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from structlog.typing import FilteringBoundLogger

from mdgw.core.backoff import Backoff
from mdgw.core.bybit import full_snapshot_frame
from mdgw.core.bybit_spec import FULL_ORDERBOOK_PATH, FULL_TOPIC_PREFIX

__all__ = ["MAX_ATTEMPTS", "SnapshotCounters", "SnapshotFetcher", "is_full_topic"]

MAX_ATTEMPTS: Final = 5
_MAX_BODY: Final = 64 * 1024 * 1024  # 2 x 10,000 levels is a few MB; refuse anything absurd

Deliver = Callable[[bytes], bool]


def is_full_topic(topic: str) -> bool:
    return topic.startswith(FULL_TOPIC_PREFIX)


@dataclass(slots=True)
class SnapshotCounters:
    requested: int = 0
    fetched: int = 0
    failed_attempts: int = 0  # each failed try (retried)
    given_up: int = 0
    undelivered: int = 0  # fetched, but the connection was down


class SnapshotFetcher:
    """One worker task; :meth:`request` queues a topic (once), :meth:`run` serves the queue."""

    def __init__(
        self,
        *,
        rest_url: str,
        timeout: float,
        max_per_second: float,
        backoff: Callable[[], Backoff],
        log: FilteringBoundLogger,
    ) -> None:
        self._rest_url = rest_url
        self._timeout = timeout
        self._interval = 1.0 / max_per_second
        self._backoff = backoff
        self._log = log.bind(component="rest_snapshots")
        self._pending: dict[tuple[str, str], Deliver] = {}
        self._wake = asyncio.Event()
        self._last_request = -1e9
        self.counters = SnapshotCounters()

    def request(self, category: str, topic: str, deliver: Deliver) -> None:
        """Fetch ``topic``'s snapshot and hand the frame to ``deliver`` (the connection)."""
        self.counters.requested += 1
        self._pending[(category, topic)] = deliver  # a repeat while queued is one fetch
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            (category, topic), deliver = next(iter(self._pending.items()))
            del self._pending[(category, topic)]
            frame = await self._fetch(category, topic)
            if frame is None:
                continue
            if deliver(frame):
                self.counters.fetched += 1
            else:
                self.counters.undelivered += 1

    async def _fetch(self, category: str, topic: str) -> bytes | None:
        symbol = topic[len(FULL_TOPIC_PREFIX) :]
        query = urlencode({"category": category, "symbol": symbol})
        url = f"{self._rest_url}{FULL_ORDERBOOK_PATH}?{query}"
        backoff = self._backoff()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wait = self._last_request + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the rate limit
            self._last_request = time.monotonic()
            try:
                return await asyncio.to_thread(self._get, url, symbol)
            except Exception as exc:
                self.counters.failed_attempts += 1
                delay = backoff.next_delay()
                self._log.warning(
                    "rest_snapshot_failed",
                    topic=topic,
                    attempt=attempt,
                    error=str(exc)[:200],
                    retry_in=round(delay, 3) if attempt < MAX_ATTEMPTS else None,
                )
                if attempt < MAX_ATTEMPTS:
                    await asyncio.sleep(delay)
        self.counters.given_up += 1
        return None

    def _get(self, url: str, symbol: str) -> bytes:
        # In a worker thread: blocking I/O and the JSON work of a few-MB answer stay off
        # the event loop that reads the websockets.
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body: bytes = response.read(_MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            raise OSError(f"HTTP {exc.code}") from None
        if len(body) > _MAX_BODY:
            raise ValueError("answer too large")
        return full_snapshot_frame(symbol, body)

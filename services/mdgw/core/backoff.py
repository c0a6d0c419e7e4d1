"""Reconnect policy, pure: capped exponential backoff with jitter, and Bybit's connection cap.

Nothing here reads a clock or draws randomness: the shell passes ``now`` (a monotonic clock
reading, in seconds) and an RNG (``random.Random(...).random`` or similar), so tests are exact.

- :class:`Backoff`: attempt ``n`` (from 0) has base ``min(maximum, initial * factor**n)`` and
  waits a uniformly random time in ``[base / 2, base]`` ("equal jitter"). Jitter keeps many
  connections dropped at once from reconnecting in lock-step; the ``base / 2`` floor means a
  delay is never ~0, so a connection that fails instantly cannot spin in a tight loop. The
  shell calls :meth:`Backoff.reset` once a connection has proved healthy, not merely opened.
- :class:`ConnectionRateLimiter`: a sliding-window cap on new connections. Bybit allows 500
  new websocket connections per 5 minutes per IP; exceeding it gets the IP refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from mdgw.core.bybit_spec import CONNECTION_WINDOW, MAX_NEW_CONNECTIONS

__all__ = [
    "Backoff",
    "ConnectionRateLimiter",
]


class Backoff:
    """Delays between reconnect attempts: capped exponential base, equal jitter.

    ``rng`` returns floats in ``[0, 1)``; values outside are clamped, so a bad RNG cannot
    produce a delay outside ``[base / 2, base]``.
    """

    __slots__ = ("_attempts", "_next_base", "_rng", "factor", "initial", "maximum")

    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = 2.0,
        *,
        rng: Callable[[], float],
    ) -> None:
        if not initial > 0:
            raise ValueError(f"initial must be > 0, got {initial}")
        if not maximum >= initial:
            raise ValueError(f"maximum ({maximum}) must be >= initial ({initial})")
        if not factor >= 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._rng = rng
        self._attempts = 0
        self._next_base = initial

    @property
    def attempts(self) -> int:
        """Delays handed out since construction or the last :meth:`reset`."""
        return self._attempts

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; each call counts one attempt."""
        base = self._next_base
        # Grow step by step and cap at once: initial * factor**n would overflow for large n.
        self._next_base = min(self.maximum, base * self.factor)
        self._attempts += 1
        jitter = min(1.0, max(0.0, self._rng()))
        return min(base, base / 2 + base / 2 * jitter)

    def reset(self) -> None:
        """Start over from ``initial`` (call once a connection has proved healthy)."""
        self._attempts = 0
        self._next_base = self.initial


class ConnectionRateLimiter:
    """At most ``max_events`` new connections in any ``window`` seconds (sliding window).

    An event recorded at ``t`` counts while ``now < t + window``. ``now`` must come from a
    monotonic clock; a reading earlier than the last recorded one is treated as that one.
    """

    __slots__ = ("_events", "max_events", "window")

    def __init__(
        self, max_events: int = MAX_NEW_CONNECTIONS, window: float = CONNECTION_WINDOW
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if not window > 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.max_events = max_events
        self.window = window
        self._events: deque[float] = deque()

    def _expire(self, now: float) -> None:
        events = self._events
        while events and events[0] + self.window <= now:
            events.popleft()

    def in_window(self, now: float) -> int:
        """How many recorded connections still count at ``now``."""
        self._expire(now)
        return len(self._events)

    def delay_until_allowed(self, now: float) -> float:
        """0.0 if a new connection may start at ``now``, else the seconds until one may."""
        self._expire(now)
        if len(self._events) < self.max_events:
            return 0.0
        # The (len - max + 1)-th oldest must leave; with record() obeying this, that is the oldest.
        leaving = self._events[len(self._events) - self.max_events]
        return leaving + self.window - now

    def record(self, now: float) -> None:
        """A new connection was started at ``now``."""
        if self._events and now < self._events[-1]:
            now = self._events[-1]
        self._expire(now)
        self._events.append(now)

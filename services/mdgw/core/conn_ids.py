"""Connection ids for the raw envelope: unique per websocket, never reused, sans-I/O."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ConnIds"]


class ConnIds:
    """Connection ids: ``(prefix << 16) | counter``, never reused within the process.

    The 16-bit prefix is random per process, so a restarted ingestor does not reuse the
    ids of its previous life (the book builder keys sequence tracking on them). When the
    counter runs out, a new prefix, distinct from every one used so far, is drawn.
    """

    def __init__(self, randbits: Callable[[int], int]) -> None:
        self._randbits = randbits
        self._used: set[int] = set()
        self._prefix = self._new_prefix()
        self._counter = 0

    def _new_prefix(self) -> int:
        if len(self._used) >= 0xFFFF:
            raise RuntimeError("connection ids exhausted")
        while True:
            prefix = self._randbits(16) & 0xFFFF
            if prefix and prefix not in self._used:  # prefix 0 would allow conn_id 0
                self._used.add(prefix)
                return prefix

    def next(self) -> int:
        self._counter += 1
        if self._counter > 0xFFFF:
            self._prefix = self._new_prefix()
            self._counter = 1
        return (self._prefix << 16) | self._counter

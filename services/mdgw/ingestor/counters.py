"""The ingestor's counters, summed into its periodic stats line."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["ConnectionCounters", "ControlCounters"]


@dataclass(slots=True)
class ConnectionCounters:
    """Monotonic counters of one connection slot, summed by the service's stats line."""

    frames_in: int = 0  # every websocket message received
    forwarded: int = 0  # data frames pushed to the builder
    dropped: int = 0  # data frames dropped: PUSH would block (builder gone, HWM reached)
    unknown: int = 0  # frames of no known shape
    pongs: int = 0
    acks: int = 0
    errors: int = 0  # success: false answers
    attempts: int = 0  # connection attempts
    failures: int = 0  # attempts that did not open a websocket
    reconnects: int = 0  # attempts after the first
    silences: int = 0  # websockets aborted by the watchdog
    oversized: int = 0  # websockets closed with 1009 (frame above max_frame_bytes)
    resyncs: int = 0  # resyncs started
    events_dropped: int = 0  # CONN_UP / CONN_DOWN envelopes that could not be pushed

    def add(self, other: ConnectionCounters) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(slots=True)
class ControlCounters:
    """Counters of the control socket (resync requests from the book builder)."""

    resync_requests: int = 0  # well-formed requests received
    resync_not_owned: int = 0  # for topics another ingestor owns
    malformed_control: int = 0

"""Fault switches of the simulator: what each one is, how it is asked for, what it does to bytes.

Pure: the shell (:mod:`.server`) decides which connections a fault hits and when; this module
parses requests (from the HTTP control endpoint or the command line) and rewrites frames.

========== ======================================================================= ==========
kind       effect                                                                  targets
========== ======================================================================= ==========
drop       abort the TCP connection: no close frame, no close handshake            conns
skip       do not send the next book frame that advances u (a gap in u)            conns+topic
restart    a ``u = 1`` snapshot, deltas continue from 1 (changes the truth's u)    topic
crossed    replace the next book frame that advances u by the same frame with a    conns+topic
           bid one tick above the best ask added (a crossed book)
malformed  replace the next book frame that advances u by its first bytes only:    conns+topic
           invalid JSON that still starts with ``{"topic":"<topic>"``
oversized  replace the next data frame by the same frame padded past ``size``      conns+topic
           bytes (default 5 MiB, over the ingestor's 4 MiB limit)
silence    send nothing (data, acks, pongs) and read nothing for ``seconds``       conns
mute_pongs answer no ``{"op":"ping"}`` for ``seconds`` (data keeps flowing)        conns
delay      send everything ``seconds`` late (a slower path), until ``clear``; nothing  conns
           is lost, order is kept
refuse     answer new websocket upgrades with HTTP 503 for ``seconds``             server
clear      disarm every pending frame fault, end silences, mutes, delays, refusals server
========== ======================================================================= ==========

Connections are selected by ``category`` and ``conn_id`` (the ``conn_id`` of the acks);
either left out means "all". For frame faults, ``topic`` also selects (connections subscribed
to it); without a topic the fault hits the connection's next matching frame of any topic.
A frame fault is a fault on the wire: the market and its truth do not change. Only
``restart`` changes the truth (the u=1 snapshot is what the topic now is).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import orjson

from mdgw.core.bybit_spec import CATEGORIES

__all__ = [
    "DEFAULT_OVERSIZED_BYTES",
    "FRAME_FAULTS",
    "FaultError",
    "FaultKind",
    "FaultRequest",
    "crossed_frame",
    "faulty_payload",
    "malformed_frame",
    "oversized_frame",
    "take_fault",
]

DEFAULT_OVERSIZED_BYTES: Final = 5 * 1024 * 1024


class FaultKind(enum.StrEnum):
    DROP = "drop"
    SKIP = "skip"
    RESTART = "restart"
    CROSSED = "crossed"
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    SILENCE = "silence"
    MUTE_PONGS = "mute_pongs"
    DELAY = "delay"
    REFUSE = "refuse"
    CLEAR = "clear"


# Faults armed on a connection and fired by its next matching frame.
FRAME_FAULTS: Final = frozenset(
    {FaultKind.SKIP, FaultKind.CROSSED, FaultKind.MALFORMED, FaultKind.OVERSIZED}
)
_TIMED: Final = frozenset(
    {FaultKind.SILENCE, FaultKind.MUTE_PONGS, FaultKind.REFUSE, FaultKind.DELAY}
)
_CATEGORIES: Final = (*CATEGORIES, "misc/status")  # misc/status: system.status


class FaultError(ValueError):
    """A fault request that cannot be carried out (the message says why)."""


@dataclass(frozen=True, slots=True)
class FaultRequest:
    kind: FaultKind
    category: str | None = None
    conn_id: str | None = None
    topic: str | None = None
    seconds: float = 0.0
    size: int = DEFAULT_OVERSIZED_BYTES

    def __post_init__(self) -> None:
        if self.category is not None and self.category not in _CATEGORIES:
            raise FaultError(f"category must be one of {', '.join(_CATEGORIES)}")
        if self.kind in _TIMED and not self.seconds > 0:
            raise FaultError(f"{self.kind} needs seconds > 0")
        if self.kind is FaultKind.RESTART and (self.topic is None or self.category is None):
            raise FaultError("restart needs a category and a topic")
        if self.size <= 0:
            raise FaultError("size must be positive")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> FaultRequest:
        """Parse the control endpoint's query (``kind=skip&topic=…&category=linear``)."""
        unknown = set(params) - {"kind", "category", "conn_id", "topic", "seconds", "size"}
        if unknown:
            raise FaultError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        try:
            kind = FaultKind(params.get("kind", ""))
        except ValueError:
            kinds = ", ".join(kind.value for kind in FaultKind)
            raise FaultError(f"kind must be one of {kinds}") from None
        try:
            seconds = float(params.get("seconds", "0"))
            size = int(params.get("size", str(DEFAULT_OVERSIZED_BYTES)))
        except ValueError:
            raise FaultError("seconds must be a number and size an integer") from None
        return cls(
            kind,
            category=params.get("category") or None,
            conn_id=params.get("conn_id") or None,
            topic=params.get("topic") or None,
            seconds=seconds,
            size=size,
        )

    def to_query(self) -> dict[str, str]:
        query = {"kind": self.kind.value}
        for name in ("category", "conn_id", "topic"):
            value = getattr(self, name)
            if value is not None:
                query[name] = value
        if self.kind in _TIMED:
            query["seconds"] = repr(self.seconds)
        if self.kind is FaultKind.OVERSIZED:
            query["size"] = str(self.size)
        return query


def crossed_frame(payload: bytes, bid_price: str) -> bytes:
    """The same book frame with a bid at *bid_price* (above the best ask) put first.

    A level-1 snapshot gets that bid instead of its own; other frames gain one bid level.
    """
    frame = orjson.loads(payload)
    data = frame["data"]
    size = data["a"][0][1] if data["a"] else "1"
    if frame["topic"].startswith("orderbook.rpi."):
        # Crossed on the non-RPI sizes: RPI-only overlap is no broken book (core.rpi_book).
        size = next((level[1] for level in data["a"] if level[1] != "0"), "1")
        data["b"] = [[bid_price, size, "0"], *data["b"]]
    elif frame["topic"].startswith("orderbook.1."):
        data["b"] = [[bid_price, size]]
    else:
        data["b"] = [[bid_price, size if size != "0" else "1"], *data["b"]]
    return orjson.dumps(frame)


def malformed_frame(payload: bytes) -> bytes:
    """The frame cut short: still starts with ``{"topic":"<topic>"``, is not valid JSON."""
    head = payload.index(b'"', len(b'{"topic":"')) + 1  # end of the topic string
    cut = max(head + 8, len(payload) // 2)
    return payload[: min(cut, len(payload) - 1)]


def oversized_frame(payload: bytes, size: int) -> bytes:
    """The same frame with a padding field that makes it at least *size* bytes long."""
    pad = max(0, size - len(payload) - len(b',"pad":""'))
    return payload[:-1] + b',"pad":"' + b"x" * pad + b'"}'


def take_fault(
    armed: list[FaultRequest], topic: str, trade: bool, fresh: bool
) -> FaultRequest | None:
    """The first of a connection's *armed* frame faults that this frame fires (removed from
    the list), or None.

    A fault with a topic waits for a frame of that topic. ``oversized`` fires on any frame;
    the others on the next frame that advances u (*fresh*), or on a trade frame only when
    they name its topic.
    """
    for index, fault in enumerate(armed):
        if fault.topic is not None and fault.topic != topic:
            continue
        if fault.kind is FaultKind.OVERSIZED:
            hit = True
        elif trade:
            hit = fault.topic is not None
        else:
            hit = fresh
        if hit:
            del armed[index]
            return fault
    return None


def faulty_payload(fault: FaultRequest, payload: bytes, crossing_bid: Callable[[], str]) -> bytes:
    """What a fired frame fault sends instead of *payload* (empty: nothing, for ``skip``).

    *crossing_bid* gives a bid price one tick above the best ask (for ``crossed``).
    """
    if fault.kind is FaultKind.SKIP:
        return b""
    if fault.kind is FaultKind.CROSSED:
        return crossed_frame(payload, crossing_bid())
    if fault.kind is FaultKind.MALFORMED:
        return malformed_frame(payload)
    return oversized_frame(payload, fault.size)

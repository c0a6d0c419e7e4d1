"""One websocket connection of the simulator: its protocol session and its fault state."""

from __future__ import annotations

from collections import deque
from typing import Any

from websockets.asyncio.server import ServerConnection

from mdgw.simulator.faults import FaultRequest
from mdgw.simulator.protocol import Session

__all__ = ["Client"]


class Client:
    """One websocket connection: its protocol session and its fault state."""

    __slots__ = (
        "category",
        "conn_id",
        "delay",
        "delayed",
        "faults",
        "frames",
        "muted_until",
        "send_text",
        "session",
        "silent_until",
        "ws",
    )

    def __init__(self, ws: ServerConnection, category: str, session: Session) -> None:
        self.ws = ws
        self.category = category
        self.session = session
        self.conn_id = session.conn_id
        # The sans-I/O protocol's send: frames the bytes into its buffer, no I/O, no await.
        self.send_text = ws.protocol.send_text
        self.faults: list[FaultRequest] = []  # armed frame faults, fired in order
        self.silent_until = 0.0
        self.muted_until = 0.0
        self.frames = 0
        self.delay = 0.0  # seconds every frame waits (the delay fault)
        self.delayed: deque[tuple[float, bytes]] = deque()  # (due, payload), in order

    def silence(self, until: float) -> None:
        """Send nothing until loop time *until*; reading stops too, so not even
        websocket-level pings are answered."""
        self.silent_until = until
        self.ws.transport.pause_reading()

    def end_silence(self) -> None:
        self.silent_until = 0.0
        if not self.ws.transport.is_closing():
            self.ws.transport.resume_reading()

    def clear_faults(self) -> None:
        """Disarm frame faults, end a silence, a mute and a delay (what the delay holds
        back still goes out, in order)."""
        self.faults.clear()
        self.muted_until = 0.0
        self.delay = 0.0
        if self.silent_until:
            self.end_silence()

    def describe(self) -> dict[str, Any]:
        """This connection in ``/sim/status``."""
        return {
            "conn_id": self.conn_id,
            "category": self.category,
            "topics": self.session.topics,
            "frames": self.frames,
            "faults": [fault.kind.value for fault in self.faults],
        }

"""Who gets which frame: the simulator's subscribers, their faults on the way, the writes.

A frame is encoded once by the market; :meth:`Fanout.dispatch` hands the same bytes to every
subscriber of its topic (framed by the websockets sans-I/O protocol, no re-encoding, no
``await``), and :meth:`Fanout.flush` then writes each touched connection's frames with one
system call. Armed frame faults, silences and delays take a slower path per client
(:meth:`Fanout.deliver`); without any, a frame goes to all subscribers in one loop.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.exceptions import InvalidState

from mdgw.runtime.logging import get_logger
from mdgw.simulator.connection import Client
from mdgw.simulator.faults import faulty_payload, take_fault
from mdgw.simulator.market import Frame

__all__ = ["Fanout"]

log = get_logger()


class Fanout:
    """The subscribers of every (category, topic) and what is on its way to each client.

    *crossing_bid* gives the bid price a ``crossed`` fault writes into a frame of a symbol;
    a connection whose write buffer exceeds *max_write_buffer* bytes is dropped. ``now`` is
    the loop time the shell last set (silences and delays are measured against it).
    """

    def __init__(self, crossing_bid: Callable[[str, str], str], max_write_buffer: int) -> None:
        self.subs: dict[tuple[str, str], set[Client]] = {}
        self.faulted: set[Client] = set()  # clients with armed frame faults
        self.silent: set[Client] = set()
        self.delayed: set[Client] = set()  # clients with the delay fault
        self.frames_out = 0  # frames written since the start
        self.now = 0.0
        self._touched: set[Client] = set()
        self._crossing_bid = crossing_bid
        self._max_write_buffer = max_write_buffer

    def forget(self, client: Client) -> None:
        """A closed connection: nothing more is sent to it (its topics are the shell's)."""
        self.faulted.discard(client)
        self.silent.discard(client)
        self.delayed.discard(client)
        self._touched.discard(client)

    def send_now(self, client: Client, payload: bytes) -> None:
        """Send a control frame (ack, pong, error) unless the connection is silenced."""
        if client.silent_until > self.now:
            return
        if client.delay:
            client.delayed.append((self.now + client.delay, payload))
            return
        try:
            client.send_text(payload)
        except InvalidState:
            return
        self._touched.add(client)
        self.flush()

    def dispatch(self, frame: Frame) -> None:
        """Hand one frame to every subscriber of its topic (written by :meth:`flush`)."""
        subscribers = self.subs.get((frame.category, frame.topic))
        if not subscribers:
            return
        if self.faulted or self.silent or self.delayed:
            for client in subscribers:
                self.deliver(client, frame)
            return
        payload = frame.payload
        touched = self._touched
        for client in subscribers:
            try:
                client.send_text(payload)
            except InvalidState:
                continue  # closing: the shell's forget will unsubscribe it
            client.frames += 1
            touched.add(client)
        self.frames_out += len(subscribers)

    def deliver(self, client: Client, frame: Frame) -> None:
        """One frame to one client, through its faults."""
        if client.silent_until > self.now:
            return
        payload = frame.payload
        if client.faults:
            fault = take_fault(client.faults, frame.topic, frame.kind == "trade", frame.fresh)
            if fault is not None:
                if not client.faults:
                    self.faulted.discard(client)
                payload = faulty_payload(
                    fault, payload, lambda: self._crossing_bid(frame.category, frame.symbol)
                )
                log.info(
                    "fault_fired",
                    kind=fault.kind.value,
                    conn_id=client.conn_id,
                    topic=frame.topic,
                    u=frame.u,
                )
                if not payload:
                    return
        if client.delay:
            client.delayed.append((self.now + client.delay, payload))
            return
        self._write(client, payload)

    def send_delayed(self) -> None:
        """Send what the delay fault held back and is now due (every tick)."""
        now = self.now
        for client in list(self.delayed):
            queue = client.delayed
            while queue and queue[0][0] <= now:
                if not self._write(client, queue.popleft()[1]):
                    queue.clear()
                    break
            if not client.delay and not queue:
                self.delayed.discard(client)

    def _write(self, client: Client, payload: bytes) -> bool:
        """One data frame into the client's protocol buffer; False when it is closing."""
        try:
            client.send_text(payload)
        except InvalidState:
            return False
        client.frames += 1
        self.frames_out += 1
        self._touched.add(client)
        return True

    def flush(self) -> None:
        """Write every touched connection's pending frames, one system call each."""
        limit = self._max_write_buffer
        for client in self._touched:
            ws = client.ws
            chunks = ws.protocol.data_to_send()
            if not chunks:
                continue
            transport = ws.transport
            data = [chunk for chunk in chunks if chunk]
            if data:
                transport.writelines(data)
            if len(data) < len(chunks) and transport.can_write_eof():
                transport.write_eof()  # the protocol asked for a half-close
            if transport.get_write_buffer_size() > limit:
                log.warning("slow_client_dropped", conn_id=client.conn_id, buffered=limit)
                transport.abort()
        self._touched.clear()

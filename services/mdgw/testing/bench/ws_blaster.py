"""A bare websocket server that streams scripted Bybit depth-50 frames to the ingestor.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.ws_blaster --symbols 100 (--rate R | --topic-rate R | --max)

Speaks just enough of Bybit v5 public streams at ``ws://127.0.0.1:PORT/v5/public/linear``:
the websocket handshake and framing (RFC 6455, no extensions) written by hand on an asyncio
``Protocol``, and the subscribe/unsubscribe/ping answers of the simulator's sans-I/O
:class:`mdgw.simulator.protocol.Session`. A book subscription gets a snapshot at the
topic's current ``u``, then deltas from :mod:`.frames` (contiguous ``u`` per topic, so a
resubscribe gets the right book too).

- ``--rate R``: R book frames per second in all, round-robin over the subscribed topics;
- ``--topic-rate R`` (``--trade-rate T``): R book frames (T trade frames) per second per
  subscribed topic, like Bybit's depth-50 pushes (the scale and memory runs);
- ``--max``: as fast as each client reads (written whenever the transport is not paused).

Paced frames go out on a 1 ms timer (asyncio's timer resolution), so at 30k frames/s they
leave in bursts of about 30, as a busy Bybit connection delivers them. The server writes a
client's frames of one tick with one ``transport.write``. A client more than 64 MiB behind
is dropped, as Bybit would. The chosen port is written to ``--ready``; SIGUSR1 stops the
frames but keeps the connections open (so a benchmark can read the gateway's counters
without the noise of its own end); on SIGTERM the counters go to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import signal
import struct
import time
import uuid
from typing import Any

from mdgw.simulator.protocol import Reply, Session, Subscribed
from mdgw.testing.bench import frames
from mdgw.testing.bench.common import helper_parser

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_BUFFER = 64 * 1024 * 1024
_TICK_S = 0.001
_MAX_CHUNK = 256  # frames per write in --max mode
_LEN16 = struct.Struct(">BBH")
_LEN64 = struct.Struct(">BBQ")


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server frame (FIN set)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return _LEN16.pack(0x80 | opcode, 126, n) + payload
    return _LEN64.pack(0x80 | opcode, 127, n) + payload


class Client(asyncio.Protocol):
    """One websocket connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False
        self.session: Session | None = None
        self.books: list[frames.BookScript] = []  # subscribed book topics
        self.trades: list[int] = []  # subscribed trade symbols
        self.paused = False
        self.resumed = asyncio.Event()
        self.streaming = False  # --max: the client's stream task runs
        self.sent = 0

    # ------------------------------------------------------------------ asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.server.forget(self)
        self.resumed.set()

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            self._handshake()
        while self.open and self._one_frame():
            pass

    # ------------------------------------------------------------------ websocket

    def _handshake(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        path = head[0].split(" ")[1] if " " in head[0] else ""
        key = headers.get("sec-websocket-key", "")
        assert self.transport is not None
        if path != "/v5/public/linear" or not key:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        self.transport.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        self.open = True
        self.session = Session("linear", str(uuid.uuid4()), self.server.topic_exists)
        self.server.clients.add(self)

    def _one_frame(self) -> bool:
        """Parse one masked client frame from the buffer; False when it is incomplete."""
        buf = self.buffer
        if len(buf) < 2:
            return False
        opcode, length, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return False
            length, offset = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return False
            length, offset = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < offset + 4 + length:
            return False
        mask = bytes(buf[offset : offset + 4])
        data = bytes(buf[offset + 4 : offset + 4 + length])
        del buf[: offset + 4 + length]
        if length:
            key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
            data = (int.from_bytes(data, "big") ^ key).to_bytes(length, "big")
        assert self.transport is not None
        if opcode in (0x1, 0x2):
            self._on_message(data)
        elif opcode == 0x8:  # close: answer with the same code, then hang up
            self.transport.write(ws_frame(data[:2], 0x8))
            self.transport.close()
            self.open = False
        elif opcode == 0x9:
            self.transport.write(ws_frame(data, 0xA))
        return True

    def _on_message(self, data: bytes) -> None:
        assert self.session is not None and self.transport is not None
        outcome = self.session.receive(data)
        if isinstance(outcome, Reply):
            self.transport.write(ws_frame(outcome.payload))
            return
        self.transport.write(ws_frame(outcome.ack.payload))
        if isinstance(outcome, Subscribed):
            self.server.subscribe(self, outcome.topics)
        else:
            self.server.unsubscribe(self, outcome.topics)

    def write(self, chunk: list[bytes], count: int) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(chunk))
        self.sent += count
        if self.transport.get_write_buffer_size() > _MAX_BUFFER:
            self.server.slow_clients += 1
            self.transport.abort()


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.symbols = args.symbols
        self.books = [frames.script(i, args.seed) for i in range(self.symbols)]
        self.trade_templates = [frames.trade_template(i) for i in range(self.symbols)]
        self.topics = {book.topic: i for i, book in enumerate(self.books)}
        self.trade_topics = {frames.trade_topic(i): i for i in range(self.symbols)}
        self.k = [0] * self.symbols  # deltas sent per topic (u = U0 + k)
        self.clients: set[Client] = set()
        self.book_slots: list[tuple[Client, frames.BookScript]] = []
        self.trade_slots: list[tuple[Client, int]] = []
        self.trade_id = 0
        self.book_frames = 0
        self.trade_frames = 0
        self.snapshots = 0
        self.slow_clients = 0
        self.paused = False  # SIGUSR1: no more frames, connections stay open
        self._tasks: set[asyncio.Task[None]] = set()  # --max stream tasks (kept referenced)

    def topic_exists(self, topic: str) -> bool:
        return topic in self.topics or topic in self.trade_topics

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, client: Client, topics: tuple[str, ...]) -> None:
        ts = time.time_ns() // 1_000_000
        chunk = []
        for topic in topics:
            index = self.topics.get(topic)
            if index is not None:
                book = self.books[index]
                chunk.append(ws_frame(book.snapshot(self.k[index], ts)))
                client.books.append(book)
                self.book_slots.append((client, book))
                self.snapshots += 1
            else:
                index = self.trade_topics[topic]
                client.trades.append(index)
                self.trade_slots.append((client, index))
        if chunk:
            client.write(chunk, 0)
        if self.args.max and not client.streaming:
            client.streaming = True
            task = asyncio.get_running_loop().create_task(self._stream_max(client))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def unsubscribe(self, client: Client, topics: tuple[str, ...]) -> None:
        gone = set(topics)
        client.books = [b for b in client.books if b.topic not in gone]
        client.trades = [i for i in client.trades if frames.trade_topic(i) not in gone]
        self.book_slots = [
            (c, b) for c, b in self.book_slots if c is not client or b in client.books
        ]
        self.trade_slots = [
            (c, i) for c, i in self.trade_slots if c is not client or i in client.trades
        ]

    def forget(self, client: Client) -> None:
        self.clients.discard(client)
        self.book_slots = [(c, b) for c, b in self.book_slots if c is not client]
        self.trade_slots = [(c, i) for c, i in self.trade_slots if c is not client]

    # ------------------------------------------------------------------ sending

    async def pace(self) -> None:
        """--rate / --topic-rate: frames due since the last tick, every millisecond."""
        args = self.args
        loop = asyncio.get_running_loop()
        last = loop.time()
        book_credit = trade_credit = 0.0
        book_cursor = trade_cursor = 0
        k = self.k
        while True:
            await asyncio.sleep(_TICK_S)
            if self.paused:
                continue
            now = loop.time()
            elapsed, last = now - last, now
            book_rate = args.rate or args.topic_rate * len(self.book_slots)
            book_credit = min(book_credit + elapsed * book_rate, book_rate + 1)
            trade_credit = min(
                trade_credit + elapsed * args.trade_rate * len(self.trade_slots),
                args.trade_rate * len(self.trade_slots) + 1,
            )
            ts = time.time_ns() // 1_000_000
            pending: dict[Client, list[bytes]] = {}
            slots = self.book_slots
            if slots:
                n = int(book_credit)
                book_credit -= n
                for _ in range(n):
                    client, book = slots[book_cursor % len(slots)]
                    book_cursor += 1
                    index = book.index
                    k[index] += 1
                    pending.setdefault(client, []).append(ws_frame(book.delta(k[index], ts)))
                self.book_frames += n
            else:
                book_credit = 0.0
            trades = self.trade_slots
            if trades:
                n = int(trade_credit)
                trade_credit -= n
                for _ in range(n):
                    client, index = trades[trade_cursor % len(trades)]
                    trade_cursor += 1
                    self.trade_id += 1
                    tid = self.trade_id
                    frame = self.trade_templates[index] % (ts, ts, tid, tid)
                    pending.setdefault(client, []).append(ws_frame(frame))
                self.trade_frames += n
            for client, chunk in pending.items():
                if client.open:
                    client.write(chunk, len(chunk))

    async def _stream_max(self, client: Client) -> None:
        """--max: one client's book topics, round-robin, whenever its transport takes more."""
        k = self.k
        cursor = 0
        while client.open:
            if self.paused:
                await asyncio.sleep(0.01)
                continue
            if client.paused:
                await client.resumed.wait()
                continue
            books = client.books
            if not books:
                await asyncio.sleep(0.01)
                continue
            ts = time.time_ns() // 1_000_000
            chunk = []
            for _ in range(_MAX_CHUNK):
                book = books[cursor % len(books)]
                cursor += 1
                index = book.index
                k[index] += 1
                chunk.append(ws_frame(book.delta(k[index], ts)))
            client.write(chunk, len(chunk))
            self.book_frames += len(chunk)
            await asyncio.sleep(0)

    def result(self) -> dict[str, Any]:
        return {
            "book_frames": self.book_frames,
            "trade_frames": self.trade_frames,
            "snapshots": self.snapshots,
            "slow_clients_dropped": self.slow_clients,
        }


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: Client(server), "127.0.0.1", args.port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def pause() -> None:
        server.paused = True

    loop.add_signal_handler(signal.SIGUSR1, pause)
    pacer = None if args.max else asyncio.create_task(server.pace())
    port = listener.sockets[0].getsockname()[1]
    args.ready.write_text(str(port))
    await stop.wait()
    if pacer is not None:
        pacer.cancel()
    listener.close()
    for client in list(server.clients):
        if client.transport is not None:
            client.transport.abort()
    return server.result()


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    pace = parser.add_mutually_exclusive_group(required=True)
    pace.add_argument("--rate", type=float, help="book frames/s in all")
    pace.add_argument("--topic-rate", type=float, help="book frames/s per subscribed topic")
    pace.add_argument("--max", action="store_true", help="as fast as each client reads")
    parser.add_argument("--trade-rate", type=float, default=0.0, help="trade frames/s per topic")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.rate = args.rate or 0.0
    args.topic_rate = args.topic_rate or 0.0
    # The ready file carries the port, so it must appear whole: write it aside, then rename.
    ready = args.ready
    args.ready = ready.with_suffix(".tmp")
    started = time.monotonic()

    async def run() -> dict[str, Any]:
        task = asyncio.create_task(serve(args))
        while not args.ready.exists() and not task.done():
            await asyncio.sleep(0.01)
        if args.ready.exists():
            args.ready.rename(ready)
        return await task

    result = asyncio.run(run())
    result["seconds"] = round(time.monotonic() - started, 3)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

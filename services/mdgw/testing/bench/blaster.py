"""Raw envelopes PUSHed to the raw socket: the book builder's load, without an ingestor.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.blaster --endpoint ipc://.../raw.sock --symbols 100 [--rate R]

Sends what one ingestor connection would: ``CONN_UP``, a snapshot per symbol, then rounds
of one delta per symbol (1 to 5 levels each, contiguous ``u`` per topic, contiguous
envelope ``seq``), plus a ``HEARTBEAT`` every second. Frames are formatted from the
templates of :mod:`.frames` (four integers per frame), so the blaster costs a small
fraction of what the builder spends per frame.

- ``--rate 0`` (default): as fast as the builder takes them. Sends block when the PUSH
  pipe is full (SNDHWM plus the builder's RCVHWM), so the builder always has a backlog and
  nothing is dropped: the builder's output rate is then its capacity.
- ``--rate R``: R frames per second, paced in steps of about a millisecond.

On SIGTERM it stops and writes ``--out``: frames sent and a timeline of running counts
(``[[wall time, sent, pipe_full], ...]`` every 100 ms), from which the driver reads the
offered rate of any window and whether the pipe was full in it (``pipe_full``: sends that
found the PUSH pipe full and had to wait, i.e. the receiver was the bottleneck).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import zmq

from mdgw.core.wire import RawEncoder
from mdgw.runtime.zmqsock import NOBLOCK, fast_send
from mdgw.testing.bench import frames
from mdgw.testing.bench.common import StopFlag, helper_parser

CONN_ID = 1
_SAMPLE_S = 0.1


def _messages(encoder: RawEncoder, symbols: int, seed: int) -> Iterator[bytes]:
    """Envelopes forever: snapshots first, then one delta per symbol per round."""
    books = [frames.script(i, seed) for i in range(symbols)]
    time_ns = time.time_ns
    data = encoder.data
    yield encoder.conn_up(CONN_ID, time_ns())
    seq = 0
    ts = time_ns() // 1_000_000
    for book in books:
        seq += 1
        yield data(CONN_ID, seq, time_ns(), book.snapshot(0, ts))
    templates = [book.deltas for book in books]
    cycle = books[0].cycle
    u0 = frames.U0
    k = 0
    while True:
        k += 1
        u = u0 + k
        step = (k - 1) % cycle
        ts = time_ns() // 1_000_000
        for deltas in templates:
            seq += 1
            yield data(CONN_ID, seq, time_ns(), deltas[step] % (ts, u, u, ts))


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--endpoint", required=True, help="the builder's raw endpoint")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.0, help="frames/s; 0: as fast as taken")
    parser.add_argument("--hwm", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    stop = StopFlag()  # SIGTERM/SIGINT set it; the loops below test it

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, args.hwm)
    push.setsockopt(zmq.SNDTIMEO, 100)  # a waiting send wakes up to look at the stop flag
    push.setsockopt(zmq.LINGER, 0)
    push.connect(args.endpoint)
    encoder = RawEncoder("bench-blaster", "linear")
    messages = _messages(encoder, args.symbols, args.seed)
    # Each frame goes out with the ingestor's send (mdgw.runtime.zmqsock.fast_send: pyzmq's
    # Cython send with int flags, ~0.35 us against ~1.6 us for Socket.send), since the
    # blaster shares the two cores with the builder it loads (docs/performance.md, figure
    # 1); Socket.send (which honours SNDTIMEO) for the waits on a full pipe and heartbeats.
    send = push.send
    again = zmq.Again
    monotonic = time.monotonic
    noblock = NOBLOCK
    sent = 0
    full = 0  # sends that found the pipe full (then waited)
    timeline: list[tuple[float, int, int]] = [(time.time(), 0, 0)]
    next_sample = monotonic() + _SAMPLE_S
    next_heartbeat = monotonic() + 1.0
    started = monotonic()
    args.ready.touch()
    try:
        while not stop:
            now = monotonic()
            if args.rate > 0:
                due = int((now - started) * args.rate) - sent
                if due <= 0:
                    time.sleep(0.0005)
                    due = 0
            else:
                due = 1024
            for _ in range(min(due, 4096)):
                msg = next(messages)
                try:
                    fast_send(push, msg, noblock)
                except again:
                    full += 1  # the pipe is full: the receiver is the bottleneck
                    while True:
                        try:
                            send(msg)
                            break
                        except again:
                            if stop:
                                break
                if stop:
                    break
                sent += 1
            if now >= next_sample:
                timeline.append((time.time(), sent, full))
                next_sample = now + _SAMPLE_S
            if now >= next_heartbeat:
                next_heartbeat = now + 1.0
                # A full pipe drops it: the data keeps the builder's view of us fresh anyway.
                with contextlib.suppress(again):
                    send(encoder.heartbeat(time.time_ns()), zmq.NOBLOCK)
    finally:
        timeline.append((time.time(), sent, full))
        result: dict[str, Any] = {
            "sent": sent,
            "symbols": args.symbols,
            "rate": args.rate,
            "pipe_full": full,
            "seconds": round(monotonic() - started, 3),
            "timeline": timeline,
        }
        args.out.write_text(json.dumps(result))
        push.close(linger=0)
        ctx.term()


if __name__ == "__main__":
    main()

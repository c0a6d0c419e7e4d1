"""The book builder's drain in-process: CPU per message, and when each book reaches ZeroMQ.

A/B use (interleave runs of the two trees, same machine, same moment)::

    .venv/bin/python -m mdgw.testing.bench.drain_inproc                  # this tree
    PYTHONPATH=/path/to/other/services .venv/bin/python services/mdgw/testing/bench/drain_inproc.py

(by path for the other tree, which may not have this module).

``BookBuilder._drain`` and ``_flush`` run as the service runs them, on a real hub, a real
PUB socket (inproc, one SUB emptied between batches, outside the timed part) and a real raw
PULL (inproc) with ``--backlog`` messages waiting at each wake-up (sent to it outside the
timed part). The messages are :mod:`.hub_inproc`'s. ``--io pyzmq`` runs the drain and flush
with pyzmq's receives and sends instead of :mod:`mdgw.runtime.zio`'s choice (the C ones in
the compiled build): the A/B of that choice in one tree. Two figures, both in CPU time of
this thread (``time.thread_time_ns``, which a loaded machine disturbs much less than
wall-clock time):

- ``us_per_message``: the best of ``--repeat`` runs over all messages (throughput);
- ``handoff_us``: for every message sent to the PUB, the CPU time from the start of its
  wake-up's ``_drain`` to the send, over all wake-ups (p50 / p99 / max): the part of a
  backlog's wait that the builder's own batching adds. Measured in a separate pass, with the
  sends wrapped by a stamp (which costs the same in both trees); the first wake-up (the
  snapshots) is left out. ``first_p50``: the median over wake-ups of the first send, i.e. of
  the message that waited longest in the backlog.

With ``--tcp`` the PUB is bound on loopback TCP instead, as the builder's is, and
``us_per_message`` is the CPU time of the whole process from the first wake-up to the last
frame received: the PUB's I/O thread, which inproc does not use, included (and the SUB's).

Not a service: the builder is made without ``__init__`` (no settings, no sockets but the PUB).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import zmq

import mdgw
from mdgw.book_builder.service import BookBuilder
from mdgw.runtime import zio
from mdgw.testing.bench.hub_inproc import bench_hub, messages


class _Backlog:
    """The raw socket: a PULL (inproc) with ``backlog`` messages waiting at each wake-up."""

    def __init__(self, ctx: zmq.Context[Any], msgs: list[bytes], backlog: int, n: int) -> None:
        self.msgs = msgs
        self.backlog = backlog
        self.at = 0
        self.pull = ctx.socket(zmq.PULL)
        self.push = ctx.socket(zmq.PUSH)
        for sock in (self.pull, self.push):
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
            sock.setsockopt(zmq.LINGER, 0)
        self.pull.bind(f"inproc://drain-raw-{n}")
        self.push.connect(f"inproc://drain-raw-{n}")

    def wake(self) -> bool:
        """Queue the next wake-up's messages (inproc: waiting on the PULL once sent)."""
        start, end = self.at, min(self.at + self.backlog, len(self.msgs))
        send = self.push.send
        for msg in self.msgs[start:end]:
            send(msg)
        self.at = end
        return end > start

    def close(self) -> None:
        self.pull.close()
        self.push.close()


class _Events:
    def emit(self, event: str, fields: dict[str, Any]) -> None:
        pass


def _builder(
    ctx: zmq.Context[Any], raw: _Backlog, n: int, tcp: bool = False, io: zio.IO = zio.IN_USE
) -> tuple[BookBuilder, zmq.Socket[Any]]:
    builder = BookBuilder.__new__(BookBuilder)
    builder.hub = bench_hub()
    builder.journal = None
    builder.raw_sync = raw.pull
    builder.io = io
    builder.events = _Events()  # type: ignore[assignment]
    builder.pub_dropped = builder.internal_errors = 0
    builder._due_timer = None
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.setsockopt(zmq.LINGER, 0)
    if tcp:  # the builder's transport: the PUB's I/O thread does the sending
        pub.bind("tcp://127.0.0.1:*")
        endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    else:
        endpoint = f"inproc://drain-{n}"
        pub.bind(endpoint)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    builder.pub = pub
    builder.control = pub
    time.sleep(0.2 if tcp else 0.05)  # the subscription reaches the PUB
    return builder, sub


def _empty(sub: zmq.Socket[Any]) -> int:
    got = 0
    while True:
        try:
            sub.recv(zmq.NOBLOCK)
        except zmq.Again:
            return got
        got += 1


def _run(
    ctx: zmq.Context[Any],
    msgs: list[bytes],
    backlog: int,
    n: int,
    *,
    stamps: list[int] | None = None,
    firsts: list[int] | None = None,
    tcp: bool = False,
    io: zio.IO = zio.IN_USE,
) -> tuple[int, int]:
    """Drain all of ``msgs``; the CPU ns spent in ``_drain`` (with ``tcp``: of the whole
    process from the first wake-up to the last frame received, I/O threads and SUB too)
    and the frames published."""
    raw = _Backlog(ctx, msgs, backlog, n)
    builder, sub = _builder(ctx, raw, n, tcp, io)
    drain = builder._drain
    clock = time.thread_time_ns
    spent = published = 0
    began = time.process_time_ns()
    first = True
    while raw.wake():
        start = clock()
        mark = 0 if stamps is None else len(stamps)
        drain()
        spent += clock() - start
        if stamps is not None:
            if first:  # the snapshots, and the first books: not a steady backlog
                del stamps[mark:]
            for i in range(mark, len(stamps)):
                stamps[i] -= start
            if firsts is not None and len(stamps) > mark:
                firsts.append(stamps[mark])
        first = False
        published += _empty(sub)
    if tcp:
        while sub.poll(200):
            published += _empty(sub)
        spent = time.process_time_ns() - began
    assert builder.hub.stats.gaps == 0 and builder.hub.stats.malformed == 0, builder.hub.stats
    builder.pub.close()
    sub.close()
    raw.close()
    return spent, published


def handoffs(
    ctx: zmq.Context[Any], msgs: list[bytes], backlog: int, n: int, io: zio.IO = zio.IN_USE
) -> tuple[list[int], list[int]]:
    """CPU ns from each wake-up's start to each send of a ``[topic, payload]`` pair (the
    first wake-up left out), and to the first send of each wake-up. With pyzmq's sends each
    pair is stamped as it is sent; with the C ones, which send a flush's pairs in one call,
    each pair when that call returns (which is later by up to the call's duration)."""
    stamps: list[int] = []
    firsts: list[int] = []
    clock = time.thread_time_ns
    real_send_pairs = io.send_pairs
    if real_send_pairs is zio.PYZMQ.send_pairs:
        keep = stamps.append

        def stamped_send_pairs(sock: zmq.Socket[Any], pairs: list[tuple[bytes, bytes]]) -> int:
            dropped = 0
            for pair in pairs:
                dropped += real_send_pairs(sock, [pair])
                keep(clock())
            return dropped

    else:
        keep_all = stamps.extend

        def stamped_send_pairs(sock: zmq.Socket[Any], pairs: list[tuple[bytes, bytes]]) -> int:
            dropped = real_send_pairs(sock, pairs)
            keep_all([clock()] * len(pairs))
            return dropped

    stamped = io._replace(send_pairs=stamped_send_pairs)
    _run(ctx, msgs, backlog, n, stamps=stamps, firsts=firsts, io=stamped)
    return stamps, firsts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--trade-every", type=int, default=10)
    parser.add_argument(
        "--backlog", type=int, default=256, help="messages per wake-up (< 2048: one batch)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-handoff", action="store_true", help="throughput only")
    parser.add_argument(
        "--tcp", action="store_true", help="PUB over loopback TCP; CPU of the whole process"
    )
    parser.add_argument(
        "--io",
        choices=("active", "pyzmq"),
        default="active",
        help="the builder's receives and sends: mdgw.runtime.zio's choice, or pyzmq's",
    )
    args = parser.parse_args()
    io = zio.PYZMQ if args.io == "pyzmq" else zio.IN_USE
    msgs = messages(args.symbols, args.messages, args.trade_every)
    ctx: zmq.Context[Any] = zmq.Context()
    best = float("inf")
    published = 0
    for n in range(args.repeat):
        spent, published = _run(ctx, msgs, args.backlog, n, tcp=args.tcp, io=io)
        best = min(best, spent)
    out: dict[str, Any] = {
        "mdgw": mdgw.__file__,
        "messages": len(msgs),
        "backlog": args.backlog,
        "tcp": args.tcp,
        "io": io.name,
        "published_frames": published,
        "us_per_message": round(best / len(msgs) / 1000, 3),
    }
    if not args.no_handoff:
        stamps, firsts = handoffs(ctx, msgs, args.backlog, args.repeat, io)
        stamps.sort()
        last = len(stamps) - 1

        def pct(p: float) -> float:
            return round(stamps[min(last, round(p / 100 * last))] / 1000, 1)

        out["handoff_us"] = {
            "n": len(stamps),
            "p50": pct(50),
            "p99": pct(99),
            "max": round(stamps[-1] / 1000, 1),
            "mean": round(sum(stamps) / len(stamps) / 1000, 1),
            # the first send of each wake-up: the oldest message of the backlog
            "first_p50": round(sorted(firsts)[len(firsts) // 2] / 1000, 1),
        }
    ctx.term()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The ceiling: a process that moves raw envelopes from PULL to PUB and does nothing else.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.passthrough --raw ipc://.../raw.sock --pub tcp://127.0.0.1:P

Built like the book builder's drain (``mdgw.book_builder.service``): one asyncio readiness
wait on the PULL socket (the builder uses a reader callback instead: no difference at
saturation), then the builder's batch of non-blocking receives (up to
``BUILDER_DRAIN_BATCH``), each message sent on as ``[topic, the same bytes]`` once the batch
is in, as the builder flushes, all through the builder's own receive and send functions
(:mod:`mdgw.runtime.zio`: in C in the compiled build, else pyzmq). No parsing, no book, no
JSON: what is left is the cost of the sockets and of the Python around them, i.e. the
fastest any builder written this way could go on this machine with the same blaster. Its
rate is its own count of messages published (``timeline`` in ``--out``): the consumer,
which must also parse what it counts, may fall behind it and lose messages at the PUB,
which is no fault of the pass-through.

``--cpu-ns N`` (the loaded floor, :func:`mdgw.testing.bench.latency.pipeline_floor`) spins,
between a batch's receive and its sends, until the process has used N ns of CPU time per
message of the batch (:class:`.common.CpuBudget`): a relay that needs the builder's CPU per
message but does none of its work. Default 0, no spin: the ceiling of figure 1 and the bare
floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

import zmq
import zmq.asyncio

from mdgw.runtime import zio
from mdgw.runtime.zmqsock import BUILDER_DRAIN_BATCH
from mdgw.testing.bench.common import CpuBudget, helper_parser

TOPIC = b"book.linear.PASSTHROUGH."  # a book topic, so the same "book." consumer counts it
_BATCH = BUILDER_DRAIN_BATCH  # the builder's drain, without the hub


async def pump(args: argparse.Namespace) -> dict[str, Any]:
    ctx = zmq.asyncio.Context()
    raw = ctx.socket(zmq.PULL)
    raw.setsockopt(zmq.RCVHWM, args.hwm)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind(args.raw)
    raw_sync: zmq.Socket[bytes] = zmq.Socket.shadow(raw.underlying)
    sync_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(ctx)
    pub = sync_ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, args.hwm)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(args.pub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    args.ready.touch()
    io = zio.IN_USE  # the builder's receives and sends (mdgw.runtime.zio)
    recv_batch, send_pairs = io.recv_batch, io.send_pairs
    budget = CpuBudget(args.cpu_ns) if args.cpu_ns > 0 else None
    forwarded = dropped = 0
    timeline: list[tuple[float, int]] = []  # (wall time, forwarded) about every 100 ms
    next_sample = 0.0
    while not stop.is_set():
        await raw.poll(100)
        now = time.time()
        if now >= next_sample:
            timeline.append((now, forwarded))
            next_sample = now + 0.1
        batch, _ = recv_batch(raw_sync, _BATCH)
        if not batch:
            continue
        if budget is not None:
            for _ in batch:
                budget.spend()
        lost = send_pairs(pub, [(TOPIC, msg) for msg in batch])
        forwarded += len(batch) - lost
        dropped += lost
    raw.close(linger=0)
    pub.close(linger=0)
    ctx.term()
    timeline.append((time.time(), forwarded))
    return {"forwarded": forwarded, "dropped": dropped, "timeline": timeline, "io": io.name}


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--pub", required=True)
    parser.add_argument("--hwm", type=int, default=100_000)
    parser.add_argument("--cpu-ns", type=int, default=0, help="process CPU per message")
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(pump(args))
    result["seconds"] = round(time.monotonic() - started, 3)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

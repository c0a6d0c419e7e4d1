"""The four-process loaded floor's second process: the ingestor's stand-in.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.stream_relay --connect 127.0.0.1:P --push ipc://.../raw.sock

Reads a :mod:`.stream_sender`'s ``b"<seq>\\n"`` lines from TCP with asyncio (one
``await readline()`` per line, as the ingestor awaits ``recv`` per frame: it returns at once
while lines are buffered) and, per line, spins, stamps and PUSHes
``{"seq":n,"pub_ns":T,"recv_ns":T}`` (``--payload-bytes N``: padded with a ``pad`` string to
about N bytes, the size of a book) (one frame, ``T`` = ``time.time_ns()``) non-blocking
over ipc with the ingestor's send (:data:`mdgw.runtime.zmqsock.fast_send`) on a connecting
PUSH socket with ``IMMEDIATE`` (a libzmq I/O thread, as the ingestor has) into a
:mod:`.passthrough`. A message the PUSH refuses is counted as dropped, as the ingestor
drops it.

``--cpu-ns N`` spins before each stamp until the process has used N ns of CPU time per
line (:class:`.common.CpuBudget`): the ingestor's CPU per frame in the stack, most of which
(websockets' frame parsing) comes before its ``recv_ns`` as the spin comes before this
stamp (:func:`mdgw.testing.bench.latency.stack_cpu_per_message`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

import zmq

from mdgw.runtime.zmqsock import NOBLOCK, fast_send
from mdgw.testing.bench.common import CpuBudget, helper_parser


async def relay(args: argparse.Namespace) -> dict[str, Any]:
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, args.hwm)
    push.setsockopt(zmq.IMMEDIATE, 1)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(args.push)
    host, _, port = args.connect.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    args.ready.touch()
    budget = CpuBudget(args.cpu_ns) if args.cpu_ns > 0 else None
    readline = reader.readline
    time_ns = time.time_ns
    again = zmq.Again
    pad = b',"pad":"%s"' % (b"x" * max(0, args.payload_bytes - 60)) if args.payload_bytes else b""
    forwarded = dropped = 0
    try:
        while True:
            line = await readline()
            if not line:
                break
            if budget is not None:
                budget.spend()
            now = time_ns()
            try:
                fast_send(
                    push,
                    b'{"seq":%d,"pub_ns":%d,"recv_ns":%d%s}' % (int(line), now, now, pad),
                    NOBLOCK,
                )
            except again:
                dropped += 1
                continue
            forwarded += 1
    except asyncio.CancelledError:
        pass
    writer.close()
    push.close(linger=0)
    ctx.term()
    return {"forwarded": forwarded, "dropped": dropped}


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--connect", required=True, help="the stream_sender's HOST:PORT")
    parser.add_argument("--push", required=True, help="the passthrough's PULL endpoint")
    parser.add_argument("--hwm", type=int, default=100_000)
    parser.add_argument("--cpu-ns", type=int, default=0, help="process CPU per line")
    parser.add_argument("--payload-bytes", type=int, default=0, help="pad payloads to ~N")
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(relay(args))
    result["seconds"] = round(time.monotonic() - started, 3)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

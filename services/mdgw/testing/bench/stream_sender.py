"""The four-process loaded floor's first process: the websocket server's stand-in.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.stream_sender --rate 30000 --cpu-ns 3500

Listens on a TCP port of 127.0.0.1 (written to ``--ready``, as :mod:`.ws_blaster` writes
its own) and streams ``b"<seq>\\n"`` lines to the one client that connects (a
:mod:`.stream_relay`), at ``--rate`` lines per second, paced as :mod:`.ws_blaster` paces
its frames (``--line-bytes N``: each line padded with spaces to N bytes, the size of a
frame): an asyncio loop with a 1 ms timer, the lines due at each tick (the same credit,
capped at a second's worth) written together with one ``transport.write``. A plain TCP
stream, no ZeroMQ, as the server's websocket is one: no libzmq I/O thread in this process.

``--cpu-ns N`` spins, before each line is made, until the process has used N ns of CPU
time per line (:class:`.common.CpuBudget`): the websocket server's CPU per frame in the
stack (:func:`mdgw.testing.bench.latency.stack_cpu_per_message`), whose work on a frame
also comes before the ingestor reads it. No timestamp here: the relay stamps ``recv_ns``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

from mdgw.testing.bench.common import CpuBudget, helper_parser

_TICK_S = 0.001  # ws_blaster's tick


class _Client(asyncio.Protocol):
    def __init__(self, connected: asyncio.Future[asyncio.Transport]) -> None:
        self.connected = connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self.connected.done():
            self.connected.set_result(transport)
        else:  # one client only
            transport.abort()


async def _pace(
    transport: asyncio.Transport, rate: float, budget: CpuBudget | None, line_bytes: int
) -> int:
    """ws_blaster's ``pace`` for one client and one stream: the lines due every tick."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    credit = 0.0
    sent = 0
    while not transport.is_closing():
        await asyncio.sleep(_TICK_S)
        now = loop.time()
        elapsed, last = now - last, now
        credit = min(credit + elapsed * rate, rate + 1)
        n = int(credit)
        credit -= n
        chunk = []
        for _ in range(n):
            sent += 1
            if budget is not None:
                budget.spend()
            line = b"%d" % sent
            chunk.append(line.ljust(line_bytes - 1) + b"\n")
        if chunk:
            transport.write(b"".join(chunk))
    return sent


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[asyncio.Transport] = loop.create_future()
    listener = await loop.create_server(lambda: _Client(connected), "127.0.0.1", 0)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    port = listener.sockets[0].getsockname()[1]
    tmp = args.ready.with_suffix(".tmp")  # the port must appear whole
    tmp.write_text(str(port))
    tmp.rename(args.ready)
    budget = CpuBudget(args.cpu_ns) if args.cpu_ns > 0 else None
    waiting: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    first: set[asyncio.Future[Any]] = {connected, waiting}
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    sent = 0
    if connected.done():
        transport = connected.result()
        pacer: asyncio.Future[Any] = asyncio.ensure_future(
            _pace(transport, args.rate, budget, args.line_bytes)
        )
        await asyncio.wait({pacer, waiting}, return_when=asyncio.FIRST_COMPLETED)
        transport.abort()
        sent = await pacer
    waiting.cancel()
    listener.close()
    return {"sent": sent}


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--cpu-ns", type=int, default=0, help="process CPU per line")
    parser.add_argument("--line-bytes", type=int, default=0, help="pad lines with spaces")
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(serve(args))
    result["seconds"] = round(time.monotonic() - started, 3)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

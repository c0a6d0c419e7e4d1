"""The ingestor's reference: a bare websockets client that receives and counts, nothing else.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.ws_client --url ws://127.0.0.1:P/v5/public/linear --symbols 100

Same library, options and receive call as the ingestor (``mdgw.ingestor.session``:
``websockets.asyncio.client.connect`` without compression, ``max_queue`` 1024; the reader
in ``mdgw.ingestor.connection``: ``recv(decode=False)``), subscribes to the symbols'
``orderbook.50`` topics in batches of 100 args and counts the data frames it receives. No
timestamp, no classification, no envelope, no ZeroMQ: the difference to the ingestor's rate
is what the ingestor's own work per frame costs.

The window opens ``--warmup`` seconds after the first data frame and lasts ``--seconds``;
the count and 100 ms timeline of the window go to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

import orjson
from websockets.asyncio.client import connect

from mdgw.testing.bench import frames
from mdgw.testing.bench.common import helper_parser

MAX_QUEUE = 1024  # as mdgw.ingestor.session.MAX_QUEUE
_BUCKET_S = 0.1


async def receive(args: argparse.Namespace) -> dict[str, object]:
    topics = [frames.book_topic(i) for i in range(args.symbols)]
    buckets: list[int] = []
    count = total = 0
    first = start = end = float("inf")
    async with connect(
        args.url,
        compression=None,
        max_size=4 * 2**20,
        max_queue=MAX_QUEUE,
        ping_interval=None,
        close_timeout=0.5,
    ) as ws:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, done.set)
        for i in range(0, len(topics), 100):
            request = {"req_id": str(i), "op": "subscribe", "args": topics[i : i + 100]}
            await ws.send(orjson.dumps(request).decode())
        args.ready.touch()
        recv = ws.recv
        now = time.time
        while not done.is_set():
            frame = await recv(False)
            if not frame.startswith(b'{"topic":'):
                continue
            total += 1
            t = now()
            if t < start:
                if first == float("inf"):
                    first = t
                    start = t + args.warmup
                    end = start + args.seconds
                continue
            if t >= end:
                break
            bucket = int((t - start) / _BUCKET_S)
            while len(buckets) <= bucket:
                buckets.append(0)
            buckets[bucket] += 1
            count += 1
        result = {
            "first": first,
            "window": [start, min(end, time.time())],
            "window_s": round(min(end, time.time()) - start, 3),
            "window_counts": {"data": count},
            "counts": {"data": total},
            "bucket_s": _BUCKET_S,
            "buckets": buckets,
        }
        # No closing handshake: the server is still flooding, and the close frame would
        # wait behind megabytes of data this client no longer reads.
        ws.transport.abort()
    return result


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    result = asyncio.run(receive(args))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

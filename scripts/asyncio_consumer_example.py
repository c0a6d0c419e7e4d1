"""An asyncio consumer of mdgw: subscribe, take a snapshot, check seq (docs/operations.md).

python scripts/asyncio_consumer_example.py [PUB SNAPSHOT TOPIC]
(defaults: the shipped configs' endpoints and book.linear.BTCUSDT.)
"""

import asyncio
import json
import sys

import zmq
import zmq.asyncio

PUB, SNAPSHOT, TOPIC = sys.argv[1:] or ["tcp://127.0.0.1:7100", "tcp://127.0.0.1:7101", "book.linear.BTCUSDT."]  # fmt: skip


async def snapshot(ctx: zmq.asyncio.Context, prefix: bytes) -> dict[bytes, int]:
    """The seq of the current message of every topic under ``prefix``."""
    req = ctx.socket(zmq.REQ)
    req.connect(SNAPSHOT)
    try:
        await req.send(prefix)
        reply = await asyncio.wait_for(req.recv_multipart(), timeout=2)
    finally:
        req.close(linger=0)
    # [topic, payload] pairs, then [b"END", b'{"count": n, ...}']
    return {t: json.loads(p)["seq"] for t, p in zip(reply[:-2:2], reply[1:-2:2], strict=True)}


async def main() -> None:
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(PUB)
    sub.subscribe(TOPIC.encode())  # 1. subscribe first: updates queue up from now on
    last = await snapshot(ctx, TOPIC.encode())  # 2. then ask for the current messages
    print("snapshot", {t.decode(): seq for t, seq in last.items()}, flush=True)
    while True:
        topic, payload = await sub.recv_multipart()
        msg = json.loads(payload)
        seen = last.get(topic, msg["seq"] - 1)
        if msg["seq"] <= seen:  # 3. queued before the snapshot was taken: already in it
            continue
        if msg["seq"] != seen + 1:  # messages were lost; a book message is whole again
            print(f"hole in {topic.decode()}: {seen + 1}..{msg['seq'] - 1}", file=sys.stderr)
        last[topic] = msg["seq"]
        print(topic.decode(), msg["seq"], msg.get("bids", [])[:1], msg.get("asks", [])[:1], flush=True)  # fmt: skip


asyncio.run(main())

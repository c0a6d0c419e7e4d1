"""A consumer of mdgw in plain pyzmq: subscribe, take a snapshot, check seq (docs/operations.md).

python scripts/consumer_example.py [PUB SNAPSHOT TOPIC]
(defaults: config/gateway.toml's endpoints and book.linear.BTCUSDT.)
"""

import json
import sys

import zmq

PUB, SNAPSHOT, TOPIC = sys.argv[1:] or ["tcp://127.0.0.1:7100", "tcp://127.0.0.1:7101", "book.linear.BTCUSDT."]  # fmt: skip
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.connect(PUB)
sub.subscribe(TOPIC.encode())  # 1. subscribe first: updates queue up from now on
req = ctx.socket(zmq.REQ)
req.setsockopt(zmq.RCVTIMEO, 2000)  # recv raises zmq.Again if book_builder does not answer
req.connect(SNAPSHOT)
req.send(TOPIC.encode())  # 2. ask for the current messages of the topics under this prefix
reply = req.recv_multipart()  # [topic, payload] pairs, then [b"END", b'{"count": n, ...}']
last = {t: json.loads(p)["seq"] for t, p in zip(reply[:-2:2], reply[1:-2:2], strict=True)}
print("snapshot", {t.decode(): seq for t, seq in last.items()}, flush=True)
while True:
    topic, payload = sub.recv_multipart()
    msg = json.loads(payload)
    seen = last.get(topic, msg["seq"] - 1)
    if msg["seq"] <= seen:  # 3. queued before the snapshot was taken: already in it
        continue
    if msg["seq"] != seen + 1:  # messages were lost: ask the snapshot socket again
        print(f"hole in {topic.decode()}: {seen + 1}..{msg['seq'] - 1}", file=sys.stderr)
    last[topic] = msg["seq"]
    print(topic.decode(), msg["seq"], msg.get("bids", [])[:1], msg.get("asks", [])[:1], flush=True)

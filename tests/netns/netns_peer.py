"""The network-namespace test's peers, run as processes inside a namespace.

``consume``: a CURVE client SUB on the builder's pub socket that writes every message it
receives (``topic<TAB>payload`` lines) to a file until SIGTERM. ``verify``: reads such a file
and compares every ``book`` with the simulator's truth (``GET /sim/truth``), printing one JSON
summary line. Plain pyzmq and urllib: nothing here may hide a gateway bug.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

import zmq
import zmq.auth


def consume(args: argparse.Namespace) -> int:
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.LINGER, 0)
    public, secret = zmq.auth.load_certificate(args.key)
    server, _ = zmq.auth.load_certificate(args.server_key)
    assert secret is not None
    sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = public, secret, server
    sub.subscribe(b"")
    sub.connect(args.pub)
    count = 0
    with Path(args.out).open("w", encoding="utf-8") as out:
        while not stop:
            if not sub.poll(100):
                continue
            while True:
                try:
                    topic, payload = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                out.write(topic.decode() + "\t" + payload.decode() + "\n")
                count += 1
            out.flush()
    sub.close()
    ctx.term()
    print(json.dumps({"messages": count}), flush=True)
    return 0


def verify(args: argparse.Namespace) -> int:
    depths = dict(item.split("=") for item in args.depths.split(","))
    books = wrong = unverifiable = 0
    errors: list[str] = []
    for line in Path(args.records).read_text(encoding="utf-8").splitlines():
        _, payload = line.split("\t", 1)
        msg = json.loads(payload)
        if msg["channel"] != "book":
            continue
        books += 1
        key = f"{msg['category']}/{msg['symbol']}"
        url = (
            f"{args.truth}/sim/truth?category={msg['category']}&symbol={msg['symbol']}"
            f"&depth={depths[key]}&u={msg['u']}"
        )
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                truth = json.loads(reply.read())
        except OSError:
            unverifiable += 1
            continue
        n = args.publish_depth
        if msg["bids"] != truth["b"][:n] or msg["asks"] != truth["a"][:n]:
            wrong += 1
            if len(errors) < 5:
                errors.append(f"{key} u={msg['u']}")
    print(
        json.dumps({"books": books, "wrong": wrong, "unverifiable": unverifiable, "errors": errors})
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("consume")
    c.add_argument("--pub", required=True)
    c.add_argument("--key", required=True, help="this consumer's key_secret file")
    c.add_argument("--server-key", required=True, help="the builder's public key file")
    c.add_argument("--out", required=True)
    v = commands.add_parser("verify")
    v.add_argument("--records", required=True)
    v.add_argument("--truth", required=True, help="http://host:port of the simulator")
    v.add_argument("--depths", required=True, help="linear/BTCUSDT=50,...")
    v.add_argument("--publish-depth", type=int, default=25)
    args = parser.parse_args()
    return consume(args) if args.command == "consume" else verify(args)


if __name__ == "__main__":
    sys.exit(main())

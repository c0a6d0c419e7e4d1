"""The latency floor: one bare ZeroMQ PUB -> SUB hop between two processes, nothing else.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.hop --pub tcp://127.0.0.1:P --rate 2000

Publishes ``[b"book.linear.HOP.", {"seq":n,"pub_ns":T,"recv_ns":T}]`` at ``--rate``
messages per second, paced like :mod:`.ws_blaster` (a 1 ms timer, the messages due at each
tick sent together), with ``T`` taken right before each send. The consumer's latency
samples (``receive time - recv_ns``) are then the cost of one hop: the publisher's send, the
two ZeroMQ I/O threads, TCP loopback and the consumer's wake-up. The gateway's path has
two such hops (ingestor -> builder, builder -> consumer) plus the work in each process,
so twice this is a floor under the latency figures on this machine.
"""

from __future__ import annotations

import json
import time

import zmq

from mdgw.testing.bench.common import StopFlag, helper_parser

TOPIC = b"book.linear.HOP."


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--pub", required=True)
    parser.add_argument("--rate", type=float, required=True)
    args = parser.parse_args()

    stop = StopFlag()  # SIGTERM/SIGINT set it; the loops below test it
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(args.pub)
    args.ready.touch()
    time_ns = time.time_ns
    send = pub.send
    more = zmq.SNDMORE
    sent = 0
    started = time.monotonic()
    while not stop:
        time.sleep(0.001)
        due = int((time.monotonic() - started) * args.rate) - sent
        for _ in range(due):
            sent += 1
            now = time_ns()
            send(TOPIC, more)
            send(b'{"seq":%d,"pub_ns":%d,"recv_ns":%d}' % (sent, now, now))
    pub.close(linger=0)
    ctx.term()
    args.out.write_text(json.dumps({"sent": sent}))


if __name__ == "__main__":
    main()

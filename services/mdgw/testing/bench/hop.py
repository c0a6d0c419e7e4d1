"""The latency floor: bare ZeroMQ hops between processes, nothing else.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.hop --pub tcp://127.0.0.1:P --rate 2000      # one hop
    python -m mdgw.testing.bench.hop --push ipc://.../raw.sock --rate 30000  # two hops

``--push`` feeds a :mod:`.passthrough`: PUSH -> PULL then PUB -> SUB, as ingestor ->
builder -> consumer.

Publishes ``[b"book.linear.HOP.", {"seq":n,"pub_ns":T,"recv_ns":T}]`` at ``--rate``
messages per second, paced like :mod:`.ws_blaster` (a 1 ms timer, the messages due at each
tick sent together), with ``T`` taken right before each send. The consumer's latency
samples (``receive time - recv_ns``) are then the cost of one hop: the publisher's send, the
two ZeroMQ I/O threads, TCP loopback and the consumer's wake-up. The gateway's path has
two such hops (ingestor -> builder, builder -> consumer) plus the work in each process,
so twice this is a floor under the latency figures on this machine. With ``--push`` the
payload goes alone, one frame, to a pass-through that publishes it as the builder would:
the two hops of the gateway's path measured as one, at the same rate and pacing, with no
work in either process (:func:`mdgw.testing.bench.latency.pipeline_floor`).

``--cpu-ns N`` (the loaded floor) spins before each message's stamp until the process has
used N ns of CPU time per message (:class:`.common.CpuBudget`): the CPU per frame of the
websocket server and the ingestor, whose work on a frame comes before the ingestor's
``recv_ns``, so that the sender needs the CPU they need without it counting in the latency,
as theirs does not.
"""

from __future__ import annotations

import json
import time

import zmq

from mdgw.testing.bench.common import CpuBudget, StopFlag, helper_parser

TOPIC = b"book.linear.HOP."


def main() -> None:
    parser = helper_parser(__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pub", help="bind a PUB socket here (one hop to the consumer)")
    where.add_argument("--push", help="connect a PUSH socket here (a pass-through's PULL)")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--cpu-ns", type=int, default=0, help="process CPU per message")
    args = parser.parse_args()

    stop = StopFlag()  # SIGTERM/SIGINT set it; the loops below test it
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB if args.pub else zmq.PUSH)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.setsockopt(zmq.LINGER, 0)
    if args.pub:
        pub.bind(args.pub)
    else:
        pub.connect(args.push)
    args.ready.touch()
    time_ns = time.time_ns
    send = pub.send
    more = zmq.SNDMORE
    topic = args.pub is not None  # a pass-through adds its own topic frame
    budget = CpuBudget(args.cpu_ns) if args.cpu_ns > 0 else None
    sent = 0
    started = time.monotonic()
    while not stop:
        time.sleep(0.001)
        due = int((time.monotonic() - started) * args.rate) - sent
        for _ in range(due):
            sent += 1
            if budget is not None:
                budget.spend()
            now = time_ns()
            if topic:
                send(TOPIC, more)
            send(b'{"seq":%d,"pub_ns":%d,"recv_ns":%d}' % (sent, now, now))
    pub.close(linger=0)
    ctx.term()
    args.out.write_text(json.dumps({"sent": sent}))


if __name__ == "__main__":
    main()

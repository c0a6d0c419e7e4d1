"""The measuring end: counts messages, checks ``seq``, verifies books, records latency.

A helper process: the benchmark figures start it as a
:class:`mdgw.testing.processes.Helper` (which adds ``--out`` and ``--ready``)::

    python -m mdgw.testing.bench.consumer --endpoint tcp://127.0.0.1:P [--subscribe book.] ...

Three ways in:

- ``--mode sub`` (default): a SUB on the builder's pub socket; ``[topic, JSON payload]``.
  Every topic's ``seq`` must go up by one (a hole means the PUB dropped, i.e. this consumer
  or the network fell behind); with ``--verify-every N`` every N-th ``book`` is compared
  with the truth of :mod:`.frames` at its ``u``; with ``--latency`` every ``book`` gives a
  sample ``time.time_ns() at receive - recv_ns`` (the ingestor's receive time), split at
  ``pub_ns`` into the ingestor + builder part and the PUB/SUB + consumer part. "At
  receive" is the moment the batch it came in was off the socket: the consumer takes
  everything waiting in one call (:mod:`mdgw.runtime.zio`), stamps it, then counts it.
- ``--mode sub --payload raw``: the same SUB on the pass-through, whose payloads are raw
  envelopes: their per-connection ``seq`` is checked instead.
- ``--mode pull``: a PULL bound on the raw endpoint (a sink for the ingestor alone).

The window: it opens ``--warmup`` seconds after the first counted message and lasts
``--seconds`` (then the consumer exits by itself; 0 means until SIGTERM), or longer, until
it holds ``--min-samples`` samples (``--quick``: a starved machine still gets a number).
Counts, the 100 ms timeline and latency samples cover the window only; ``seq`` holes and
wrong books are counted from the first message on. The result goes to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import time
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import zmq

from mdgw.runtime import zio
from mdgw.testing.bench import frames
from mdgw.testing.bench.common import StopFlag, helper_parser

# Every payload starts with these fields in this order (docs/wire-format.md); recv_ns is
# missing from some status payloads.
_HEAD = re.compile(rb'"seq":(\d+),"pub_ns":(\d+)(?:,"recv_ns":(\d+))?')
_HEADER = struct.Struct("<BBBBIQQ")  # the raw envelope header (docs/wire-format.md §1)
_DATA, _CONN_UP = 0, 1
_BUCKET_S = 0.1
_BOOK = b"book."  # the prefix of every book topic (5 bytes)
_BATCH = 4096  # frames taken off the socket at most per batch (even: whole SUB messages)


def percentile(ordered: list[int] | array[int], p: float) -> int:
    """Nearest-rank percentile of an ascending sequence."""
    last = len(ordered) - 1
    return ordered[min(last, max(0, round(p / 100 * last)))]


def summarize(samples: list[int] | array[int]) -> dict[str, float] | None:
    """p50/p90/p99/p99.9/max of latency samples (ns), in microseconds."""
    if not samples:
        return None
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_us": percentile(ordered, 50) / 1000,
        "p90_us": percentile(ordered, 90) / 1000,
        "p99_us": percentile(ordered, 99) / 1000,
        "p999_us": percentile(ordered, 99.9) / 1000,
        "max_us": ordered[-1] / 1000,
        "mean_us": round(sum(ordered) / len(ordered) / 1000, 1),
    }


class Recorder:
    """What one consumer saw; ``take_*`` run once per batch of messages received together."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.first: float | None = None  # wall time of the first counted message
        self.start = self.end = float("inf")  # the window
        self.counts: Counter[str] = Counter()
        self.window_counts: Counter[str] = Counter()
        # take_pairs counts by the topic's channel as bytes; result() decodes them once.
        self.channel_counts: Counter[bytes] = Counter()
        self.window_channel_counts: Counter[bytes] = Counter()
        self.buckets: list[int] = []
        self.seq: dict[bytes, int] = {}
        self.seq_holes = 0
        self.seq_lost = 0
        self.no_seq = 0  # JSON payloads without a readable "seq"
        self.verified = 0
        self.wrong = 0
        self.wrong_examples: list[str] = []
        self.states: Counter[str] = Counter()
        self.status_examples: list[str] = []
        self.latency = array("q")
        self.to_publish = array("q")  # pub_ns - recv_ns: ingestor + builder
        self.from_publish = array("q")  # receive - pub_ns: PUB/SUB hop + this consumer
        self.second_starts: list[int] = []  # index into latency where each second begins
        self.books_seen = 0

    # ------------------------------------------------------------------ window

    def _open(self, now: float) -> None:
        self.first = now
        self.start = now + self.args.warmup
        self.end = self.start + self.args.seconds if self.args.seconds > 0 else float("inf")

    def _bucket(self, now: float, n: int) -> None:
        """Count ``n`` messages received at ``now`` (in the window) in the timeline."""
        bucket = int((now - self.start) / _BUCKET_S)
        buckets = self.buckets
        while len(buckets) <= bucket:
            buckets.append(0)
        buckets[bucket] += n

    def done(self) -> bool:
        now = time.time()
        if now < self.end:
            return False
        if self.counted() < self.args.min_samples:
            # Too few in the window (a starved smoke run): keep it open a little longer.
            self.end = now + _BUCKET_S
            return False
        return True

    def counted(self) -> int:
        """Samples in the window so far: latency samples with ``--latency``, else ``book``
        messages (raw envelopes with ``--payload raw`` or ``--mode pull``)."""
        if self.args.latency:
            return len(self.latency)
        return self.window_channel_counts[b"book"] + self.window_counts["data"]

    # ------------------------------------------------------------------ messages

    def take_pairs(self, parts: list[bytes], t_ns: int) -> None:
        """A batch of SUB messages received at ``t_ns``: ``parts`` holds each message's two
        parts in turn, ``[topic, JSON payload, topic, JSON payload, ...]``.

        One window test a batch (its messages came off the socket within microseconds of
        each other); per message the ``seq`` check, and per ``book`` the latency sample and
        every N-th one's check against the truth. Written for the consumer's CPU: it shares
        the two cores with the stack it measures (docs/performance.md, "the instrument's
        batch").
        """
        now = t_ns / 1e9
        if self.first is None and any(topic[:5] == _BOOK for topic in parts[::2]):
            self._open(now)  # the first book opens the window
        counted = self.start <= now < self.end
        sample = counted and self.args.latency
        every = self.args.verify_every
        seqs = self.seq
        last_seq = seqs.get
        holes = lost = books = 0
        seen = self.books_seen
        it = iter(parts)
        for topic, payload in zip(it, it):  # noqa: B905 (whole pairs: main() keeps an odd part back)
            # Every topic ends with "." and no payload does (a JSON object): the cheap test
            # that the two parts did not slip.
            if topic[-1:] != b".":
                raise SystemExit(f"consumer: not a [topic, payload] pair: {topic[:60]!r}")
            # Every payload starts with the same fields in the same order
            # (docs/wire-format.md): ..."seq":N,"pub_ns":N[,"recv_ns":N],...
            at = payload.find(b'"seq":')
            if at >= 0:
                try:
                    seq = int(payload[at + 6 : payload.find(b",", at)])
                except ValueError:
                    at = -1
                else:
                    last = last_seq(topic)
                    if last is not None and seq != last + 1:
                        holes += 1
                        lost += max(0, seq - last - 1)
                    seqs[topic] = seq
            if at < 0:
                self.no_seq += 1
            if topic[:5] == _BOOK:
                books += 1
                seen += 1
                if sample and at >= 0:
                    self._sample(payload, at, t_ns, now)
                if every and seen % every == 1:
                    self._verify(payload)
            else:
                self._take_other(topic, payload, counted)
        self.books_seen = seen
        self.seq_holes += holes
        self.seq_lost += lost
        if books:
            self.channel_counts[b"book"] += books
            if counted:
                self.window_channel_counts[b"book"] += books
                self._bucket(now, books)

    def _sample(self, payload: bytes, at: int, t_ns: int, now: float) -> None:
        """One latency sample from a ``book`` payload whose ``"seq":`` is at ``at``."""
        head = _HEAD.match(payload, at)
        if head is None or not head.group(3):
            return
        second = int(now - self.start)
        while len(self.second_starts) <= second:
            self.second_starts.append(len(self.latency))
        recv_ns = int(head.group(3))
        pub_ns = int(head.group(2))
        self.latency.append(t_ns - recv_ns)
        self.to_publish.append(pub_ns - recv_ns)
        self.from_publish.append(t_ns - pub_ns)

    def _take_other(self, topic: bytes, payload: bytes, counted: bool) -> None:
        """A message of any channel but ``book``: counted by its channel; a ``status``
        also by its state."""
        channel = topic[: topic.find(b".")]
        self.channel_counts[channel] += 1
        if counted:
            self.window_channel_counts[channel] += 1
        if channel == b"status":
            msg = orjson.loads(payload)
            self.states[msg.get("state", "?")] += 1
            if msg.get("state") != "live" and len(self.status_examples) < 5:
                self.status_examples.append(f"{msg.get('symbol')}: {msg.get('reason')}")

    def _verify(self, payload: bytes) -> None:
        msg = orjson.loads(payload)
        symbol = msg["symbol"]
        if not (symbol.startswith("S") and symbol.endswith("USDT")):
            return
        book = frames.script(int(symbol[1:-4]), self.args.seed)
        bids, asks = book.top(msg["u"], msg["depth"])
        self.verified += 1
        if msg["bids"] != bids or msg["asks"] != asks:
            self.wrong += 1
            if len(self.wrong_examples) < 3:
                self.wrong_examples.append(f"{symbol} u={msg['u']}: differs from the script")

    def take_envelopes(self, envelopes: list[bytes], t_ns: int) -> None:
        """A batch of raw envelopes (pass-through payloads or the raw sink's messages)
        received at ``t_ns``: DATA envelopes are counted, and their per-connection seq
        checked."""
        data = 0
        seqs = self.seq
        for msg in envelopes:
            _, kind, _, _, conn_id, seq, _ = _HEADER.unpack_from(msg)
            if kind == _CONN_UP:
                seqs.pop(conn_id.to_bytes(4, "little"), None)
                continue
            if kind != _DATA:
                continue
            data += 1
            key = conn_id.to_bytes(4, "little")
            last = seqs.get(key)
            if last is not None and seq != last + 1:
                self.seq_holes += 1
                self.seq_lost += max(0, seq - last - 1)
            seqs[key] = seq
        if data:
            self.counts["data"] += data
            now = t_ns / 1e9
            if self.first is None:
                self._open(now)  # the first DATA envelope opens the window
            if self.start <= now < self.end:
                self.window_counts["data"] += data
                self._bucket(now, data)

    # ------------------------------------------------------------------ result

    def result(self) -> dict[str, Any]:
        per_second = []
        starts = [*self.second_starts, len(self.latency)]
        for i in range(len(starts) - 1):
            chunk = self.latency[starts[i] : starts[i + 1]]
            summary = summarize(chunk)
            if summary is not None:
                per_second.append(
                    [i, summary["n"], summary["p50_us"], summary["p99_us"], summary["max_us"]]
                )
        end = min(self.end, time.time())
        for channel, n in self.channel_counts.items():
            self.counts[channel.decode()] += n
        for channel, n in self.window_channel_counts.items():
            self.window_counts[channel.decode()] += n
        self.channel_counts.clear()
        self.window_channel_counts.clear()
        return {
            "first": self.first,
            "window": [self.start, end] if self.first is not None else None,
            "window_s": round(max(0.0, end - self.start), 3) if self.first is not None else 0,
            "counts": dict(self.counts),
            "window_counts": dict(self.window_counts),
            "bucket_s": _BUCKET_S,
            "buckets": self.buckets,
            "topics": len(self.seq),
            "seq_holes": self.seq_holes,
            "seq_lost": self.seq_lost,
            "no_seq": self.no_seq,
            "verified": self.verified,
            "wrong": self.wrong,
            "wrong_examples": self.wrong_examples,
            "states": dict(self.states),
            "status_examples": self.status_examples,
            "latency": summarize(self.latency),
            "latency_to_publish": summarize(self.to_publish),
            "latency_from_publish": summarize(self.from_publish),
            "latency_per_second": per_second,
        }


def main() -> None:
    parser = helper_parser(__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--mode", choices=["sub", "pull"], default="sub")
    parser.add_argument("--payload", choices=["json", "raw"], default="json")
    parser.add_argument("--subscribe", action="append", help="topic prefix (default: book.)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument(
        "--min-samples",
        type=int,
        default=0,
        help="keep the window open past --seconds until it holds this many samples",
    )
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--verify-every", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hwm", type=int, default=100_000)
    args = parser.parse_args()

    stop = StopFlag()  # SIGTERM/SIGINT set it; the loops below test it

    ctx = zmq.Context()
    if args.mode == "pull":
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, args.hwm)
        sock.bind(args.endpoint)
    else:
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, args.hwm)
        for prefix in args.subscribe or ["book."]:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        sock.connect(args.endpoint)
    sock.setsockopt(zmq.LINGER, 0)
    rec = Recorder(args)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    time_ns = time.time_ns
    # Everything waiting, in one C call when the compiled build is in (book_builder's own
    # drain, mdgw.runtime.zio: ~0.1 us a frame against ~0.65 us for each pyzmq recv), then
    # one time stamp for the batch, then the accounting: a message's latency includes the
    # receive of the frames after it in the same batch (a few microseconds when hundreds
    # wait), never this consumer's work on the ones before it (docs/performance.md).
    recv_batch = zio.IN_USE.recv_batch
    carry: list[bytes] = []  # a topic whose payload the next batch brings
    if args.mode == "pull":
        take: Callable[[list[bytes], int], None] = rec.take_envelopes
    elif args.payload == "raw":

        def take(parts: list[bytes], t_ns: int) -> None:
            topics = parts[::2]
            if any(topic[-1:] != b"." for topic in topics):
                raise SystemExit(f"consumer: not [topic, envelope] pairs: {topics[:3]!r}")
            rec.take_envelopes(parts[1::2], t_ns)
    else:
        take = rec.take_pairs

    time.sleep(0.2)  # let the subscription reach the publisher before anyone sends
    args.ready.touch()
    try:
        while not stop and not rec.done():
            if not poller.poll(100):
                continue
            batch, _ = recv_batch(sock, _BATCH)
            t_ns = time_ns()
            if args.mode == "sub":
                # A SUB message is [topic, payload] (docs/wire-format.md). ZeroMQ delivers a
                # multipart message whole, but a batch may end between its parts (the limit
                # or a signal): the last odd part waits for the next batch.
                if carry:
                    batch[:0] = carry
                    carry.clear()
                if len(batch) % 2:
                    carry.append(batch.pop())
            take(batch, t_ns)
    finally:
        args.out.write_text(json.dumps(rec.result()))
        sock.close(linger=0)
        ctx.term()


if __name__ == "__main__":
    main()

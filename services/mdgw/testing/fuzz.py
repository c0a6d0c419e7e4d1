"""Fuzz book_builder through its raw socket, with valid frames whose book is known in between.

Plays a hostile (or broken) ingestor on the raw PUSH socket (the hostile frames are
:mod:`mdgw.testing.hostile`'s catalogue):

- **valid frames** of two tracked books (``orderbook.50.BTCUSDT``/``ETHUSDT``, linear): a
  snapshot, then deltas, and a fresh snapshot now and then (as after a resubscribe). A
  reference book (:class:`mdgw.testing.tracked.TrackedBook`) gives the correct top-25
  at every ``u``;
- **hostile frames** on the same connection, each with a definite defect: wrong types,
  huge numbers, NaN/Infinity, negative or non-numeric sizes, 10 MB strings in checked
  fields, deeply nested JSON, non-UTF-8 bytes, truncated or non-object JSON, unknown
  topics. Each must be refused: counted as ``malformed`` (or ``unsupported`` for unknown
  topics), never applied;
- **random mutations** (byte flips, cuts, splices) of frames of decoy symbols, from
  decoy ingestors: anything may happen to them, but they may not touch the tracked books;
- **bad envelopes**: too short, wrong version, kind, category, empty or non-UTF-8 ingestor
  id, truncated id, random bytes. Each must be counted as ``bad_envelopes``;
- **valid envelopes with bad timing**: sequence holes, CONN_DOWN/CONN_UP, heartbeats.

A SUB on the pub socket checks that every ``book`` message of a tracked symbol equals the
reference at its ``u``. The report has the builder's RSS before and after, its counters,
how many of each kind were sent, and its log volume.

    .venv/bin/python scripts/fuzz_builder.py --seconds 120     # starts its own book_builder

(:func:`fuzz_new_builder`; :func:`passed` judges its report). tests/reliability/
test_hostile_input.py runs :func:`fuzz` for 20 s (2 minutes with RELIABILITY_LONG=1).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import zmq

from mdgw.core import wire
from mdgw.core.bybit import decode_frame
from mdgw.core.errors import ParseError, UnsupportedTopicError
from mdgw.core.wire import EnvelopeKind
from mdgw.testing import oracles
from mdgw.testing.endpoints import Endpoints
from mdgw.testing.hostile import (
    BIG_KINDS,
    CATEGORY,
    CATEGORY_CODE,
    HOSTILE,
    INGESTOR,
    bad_envelopes,
    hub_raises,
    mutate,
)
from mdgw.testing.processes import Service
from mdgw.testing.tracked import TrackedBook

__all__ = ["Checked", "Fuzzer", "Sent", "builder_config", "fuzz", "fuzz_new_builder", "passed"]

TRACKED = ("BTCUSDT", "ETHUSDT")
DECOYS = ("DECOYONEUSDT", "DECOYTWOUSDT", "DECOYTHREEUSDT")
DECOY_INGESTORS = (b"decoy-a", b"decoy-b", b"decoy-c")


@dataclass
class Sent:
    valid: int = 0
    hostile: Counter[str] = field(default_factory=Counter)  # kind -> count
    expect_malformed: int = 0
    expect_unsupported: int = 0
    expect_bad_envelopes: int = 0
    mutations: int = 0
    mutations_malformed: int = 0  # as mdgw.core.bybit.decode_frame classifies them
    mutations_unsupported: int = 0
    envelopes: int = 0  # every message sent, good or bad
    not_refused_locally: list[str] = field(default_factory=list)
    # Frames that make mdgw.core.hub.Hub.on_raw raise (which ends book_builder's pump):
    # held back and counted, so that the run can go on; see KNOWN_CRASHERS.
    crashers_held_back: int = 0
    crasher_samples: list[str] = field(default_factory=list)


@dataclass
class Checked:
    books: int = 0  # book messages of tracked symbols received
    matched: int = 0
    wrong: list[str] = field(default_factory=list)
    unknown_u: int = 0  # a u the fuzzer never sent for that symbol (a hostile frame applied)


# --- the fuzzer ---------------------------------------------------------------------------


class Fuzzer:
    """Sends to the raw endpoint, checks what the pub endpoint publishes (in a thread)."""

    def __init__(self, raw: str, pub: str, *, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 10_000)
        # A book_builder that stops reading must fail the run, not hang it.
        self.push.setsockopt(zmq.SNDTIMEO, 10_000)
        self.push.connect(raw)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        for symbol in TRACKED:
            self.sub.subscribe(wire.topic("book", CATEGORY, symbol))
        self.sub.connect(pub)
        self.books = {s: TrackedBook(s, random.Random(f"{seed}/{s}")) for s in TRACKED}
        self.decoys = {s: TrackedBook(s, random.Random(f"{seed}/{s}")) for s in DECOYS}
        self.sent = Sent()
        self.checked = Checked()
        self.last_u: dict[str, int] = {}
        self.conn_id = 1
        self.seq = 0
        self._big_at = 0.0
        self._reconnected_at = 0.0
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="fuzz-sub", daemon=True)

    # --- sending --------------------------------------------------------------------------

    def _send(self, msg: bytes) -> None:
        self.sent.envelopes += 1
        self.push.send(msg, 0, copy=len(msg) < 65536)

    def _data(self, frame: bytes, *, ingestor: bytes = INGESTOR, canary: bool = False) -> bool:
        """Send a DATA envelope; with *canary*, not if it would make the hub raise."""
        if ingestor == INGESTOR:
            conn, seq = self.conn_id, self.seq + 1
        else:  # a decoy ingestor: any connection, any sequence
            conn, seq = self.rng.randint(1, 5), self.rng.randint(1, 1000)
        envelope = oracles.encode_raw(
            EnvelopeKind.DATA,
            ingestor=ingestor,
            category=CATEGORY_CODE,
            conn_id=conn,
            seq=seq,
            recv_ns=time.time_ns(),
            frame=frame,
        )
        if canary:
            raised = hub_raises(envelope)
            if raised is not None:
                self.sent.crashers_held_back += 1
                if len(self.sent.crasher_samples) < 10:
                    self.sent.crasher_samples.append(f"{frame[:80]!r}: {raised}")
                return False
        if ingestor == INGESTOR:
            self.seq = seq
        self._send(envelope)
        return True

    def _event(self, kind: EnvelopeKind, *, ingestor: bytes = INGESTOR, seq: int = 0) -> None:
        self._send(
            oracles.encode_raw(
                kind,
                ingestor=ingestor,
                category=CATEGORY_CODE,
                conn_id=self.conn_id if ingestor == INGESTOR else 9,
                seq=seq,
                recv_ns=time.time_ns(),
            )
        )

    def _valid(self, book: TrackedBook, snapshot: bool = False) -> None:
        self._data(book.snapshot() if snapshot else book.delta())
        self.sent.valid += 1

    def _hostile(self) -> None:
        book = self.books[self.rng.choice(TRACKED)]
        kind, expected, factory = self.rng.choice(HOSTILE)
        if kind in BIG_KINDS:  # 10 MB each: at most two per second
            now = time.monotonic()
            if now - self._big_at < 0.5:
                kind, expected, factory = HOSTILE[0]
            else:
                self._big_at = now
        frame = factory(book, self.rng)
        if not self._data(frame, canary=True):
            return
        try:
            decode_frame(frame)
        except UnsupportedTopicError:
            local = "unsupported"
        except ParseError:
            local = "malformed"
        else:
            local = "accepted"
        if local != expected:  # the decoder disagrees with the oracle: a validation bug
            self.sent.not_refused_locally.append(f"{kind}: {expected} expected, got {local}")
        self.sent.hostile[kind] += 1
        if expected == "malformed":
            self.sent.expect_malformed += 1
        else:
            self.sent.expect_unsupported += 1

    def _mutation(self) -> None:
        decoy = self.decoys[self.rng.choice(DECOYS)]
        base = decoy.snapshot() if self.rng.random() < 0.2 else decoy.delta()
        frame = mutate(base, self.rng)
        if not self._data(frame, ingestor=self.rng.choice(DECOY_INGESTORS), canary=True):
            return
        try:
            decode_frame(frame)
        except UnsupportedTopicError:
            self.sent.mutations_unsupported += 1
        except ParseError:
            self.sent.mutations_malformed += 1
        self.sent.mutations += 1

    def _bad_envelope(self) -> None:
        self.sent.expect_bad_envelopes += 1
        self.sent.hostile["bad envelope"] += 1
        self._send(self.rng.choice(bad_envelopes(self.rng)))

    def _timing(self) -> None:
        """Valid envelopes at bad moments: holes, reconnects, heartbeats."""
        roll = self.rng.random()
        now = time.monotonic()
        if roll < 0.3:
            self.seq += self.rng.randint(1, 5)  # frames lost: a sequence hole
        elif roll < 0.5 and now - self._reconnected_at >= 1.0:
            # At most one reconnect per second: a real ingestor backs off (and each new
            # connection id is a new subject for book_builder's rate-limited log).
            self._reconnected_at = now
            self._event(EnvelopeKind.CONN_DOWN, seq=self.seq)
            self.conn_id += 1
            self.seq = 0
            self._event(EnvelopeKind.CONN_UP)
            for book in self.books.values():
                self._valid(book, snapshot=True)  # a new connection brings snapshots
        else:
            self._event(EnvelopeKind.HEARTBEAT, ingestor=self.rng.choice(DECOY_INGESTORS))

    # --- checking ---------------------------------------------------------------------------

    def _read(self) -> None:
        sub, checked = self.sub, self.checked
        while not self._stop.is_set():
            if not sub.poll(100):
                continue
            for _ in range(1000):
                try:
                    _, data = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = orjson.loads(data)
                symbol, u = msg["symbol"], msg["u"]
                checked.books += 1
                self.last_u[symbol] = u
                want = self.books[symbol].truth.get(u)
                if want is None:
                    checked.unknown_u += 1
                    checked.wrong.append(f"{symbol} u={u}: no valid frame had this u")
                elif [msg["bids"], msg["asks"]] != list(want):
                    checked.wrong.append(f"{symbol} u={u}: differs from the reference")
                else:
                    checked.matched += 1

    # --- the run --------------------------------------------------------------------------

    def warm_up(self, timeout: float = 10.0) -> None:
        """Start the reader, connect, and bring the tracked books live; wait for them."""
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not all(self.last_u.get(s) for s in TRACKED):
            if time.monotonic() > deadline:
                raise RuntimeError("the tracked books never went live")
            # Until the SUB subscription reaches the publisher, books may go unseen: repeat.
            self._event(EnvelopeKind.CONN_UP)
            self.seq = 0
            for book in self.books.values():
                self._valid(book, snapshot=True)
                for _ in range(20):
                    self._valid(book)
            time.sleep(0.1)

    def run(self, seconds: float, on_second: Callable[[], None] | None = None) -> None:
        """Fuzz for *seconds*: per round a few valid deltas and one hostile message."""
        rng = self.rng
        books = list(self.books.values())
        end = time.monotonic() + seconds
        next_second = time.monotonic() + 1.0
        rounds = 0
        while time.monotonic() < end:
            rounds += 1
            for _ in range(rng.randint(1, 4)):
                self._valid(rng.choice(books))
            roll = rng.random()
            if roll < 0.35:
                self._hostile()
            elif roll < 0.75:
                self._mutation()
            elif roll < 0.85:
                self._bad_envelope()
            else:
                self._timing()
            if rounds % 40 == 0:
                for book in books:  # as after a resubscribe: the books go live again
                    self._valid(book, snapshot=True)
            if rounds % 10 == 0:
                time.sleep(0.002)  # thousands of messages per second, not a flood
            now = time.monotonic()
            if on_second is not None and now >= next_second:
                next_second = now + 1.0
                on_second()
        # End on a good stretch, so that every tracked book is live and published.
        for book in books:
            self._valid(book, snapshot=True)
            for _ in range(5):
                self._valid(book)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the last valid frame of each tracked book was published."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.last_u.get(s, 0) >= b.u for s, b in self.books.items()):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._reader.join(2)
        self.push.close(linger=2000)
        self.sub.close(linger=0)
        self.ctx.term()


# --- against a real book_builder ----------------------------------------------------------


def builder_config(tmp: Path, raw: str, pub: str, snapshot: str) -> Path:
    config = tmp / "fuzz.toml"
    config.write_text(
        f'[zmq]\nraw = "{raw}"\ncontrol = "ipc://{tmp}/control.sock"\n'
        f'pub = "{pub}"\nsnapshot = "{snapshot}"\n'
        "[books]\npublish_depth = 25\nresync_timeout = 1.0\nresync_min_interval = 0.2\n"
        '[log]\nformat = "json"\nstats_interval = 1\n'
        "[metrics]\nbook_builder = 0\n"  # no fixed port
    )
    return config


def fuzz(builder: Service, raw: str, pub: str, seconds: float, seed: int = 1) -> dict[str, Any]:
    """Fuzz the running *builder*; the report as a dict.

    ``counted`` is True when the builder's counters account for every rejection sent.
    """
    fuzzer = Fuzzer(raw, pub, seed=seed)
    rss: list[int] = []
    try:
        fuzzer.warm_up()
        time.sleep(1.0)  # let the start-up allocations settle (not an assertion)
        rss_before = builder.rss_kib()
        started = time.monotonic()
        fuzzer.run(seconds, on_second=lambda: rss.append(builder.rss_kib()))
        elapsed = time.monotonic() - started
        settled = fuzzer.settle()
    finally:
        fuzzer.close()
    sent = fuzzer.sent
    # The stats line that has seen every envelope sent (one per second).
    deadline = time.monotonic() + 10
    stats = builder.stats() or {}
    while stats.get("envelopes", 0) < sent.envelopes and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = builder.stats() or {}
    rss_after = builder.rss_kib()
    expected = {
        "bad_envelopes": sent.expect_bad_envelopes,
        "malformed": sent.expect_malformed + sent.mutations_malformed,
        "unsupported": sent.expect_unsupported + sent.mutations_unsupported,
    }
    got = {k: stats.get(k) for k in expected}
    log_lines = len(builder.raw_lines())
    return {
        "seconds": round(elapsed, 1),
        "alive": builder.alive,
        "settled": settled,
        "sent": {**asdict(sent), "hostile": dict(sent.hostile)},
        "envelopes_counted": stats.get("envelopes"),
        "checked": {**asdict(fuzzer.checked), "wrong": fuzzer.checked.wrong[:10]},
        "wrong": len(fuzzer.checked.wrong),
        "expected_counters": expected,
        "builder_counters": got,
        "counted": got == expected and not sent.not_refused_locally,
        "books": stats.get("books"),
        "rss_before_kib": rss_before,
        "rss_peak_kib": max([rss_before, *rss]),
        "rss_after_kib": rss_after,
        "rss_growth_kib": rss_after - rss_before,
        "rss_series_kib": rss,
        "log_lines": log_lines,
        "log_lines_per_s": round(log_lines / max(elapsed, 1e-9), 1),
    }


def fuzz_new_builder(workdir: Path, seconds: float, seed: int = 1) -> dict[str, Any]:
    """Start a book_builder of its own in *workdir* (short: ipc paths), fuzz it for
    *seconds*, stop it; the report of :func:`fuzz` plus its ``exit_status``."""
    endpoints = Endpoints.in_dir(workdir)
    config = builder_config(workdir, endpoints.raw, endpoints.pub, endpoints.snapshot)
    builder = Service("book_builder", config, workdir / "builder.log").start()
    try:
        report = fuzz(builder, endpoints.raw, endpoints.pub, seconds, seed)
    finally:
        report_status = builder.stop()
        endpoints.release()
    report["exit_status"] = report_status
    return report


def passed(report: dict[str, Any], rss_growth_mib: float) -> bool:
    """Whether a :func:`fuzz_new_builder` report shows nothing wrong: the builder lived and
    exited 0, published no wrong book, counted every rejection, and its memory grew by
    less than *rss_growth_mib*."""
    return bool(
        report["alive"]
        and report["exit_status"] == 0
        and report["wrong"] == 0
        and report["counted"]
        and report["rss_growth_kib"] < rss_growth_mib * 1024
    )

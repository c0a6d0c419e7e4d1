"""The benchmark's instruments: the consumer's accounting of JSON payloads and raw
envelopes (``Recorder.take_pairs``, ``Recorder.take_envelopes``) and the in-process drain
driver (``drain_inproc``)."""

from __future__ import annotations

import argparse
import struct
import time
from typing import Any

import pytest
import zmq

from mdgw.runtime import zio
from mdgw.testing.bench.consumer import Recorder
from mdgw.testing.bench.drain_inproc import _run, handoffs
from mdgw.testing.bench.hub_inproc import messages


def _recorder(warmup: float = 0.0, latency: bool = True) -> Recorder:
    args = argparse.Namespace(
        warmup=warmup, seconds=1000.0, latency=latency, verify_every=0, seed=1
    )
    return Recorder(args)


def _book(seq: int, pub_ns: int, recv_ns: int) -> bytes:
    head = '{"channel":"book","exchange":"bybit","category":"linear","symbol":"S1USDT",'
    return (
        f'{head}"seq":{seq},"pub_ns":{pub_ns},"recv_ns":{recv_ns},"u":7,"ts":1,"cts":1,'
        '"depth":25,"bids":[["1.5","2"]],"asks":[["1.6","3"]]}'
    ).encode()


_STATUS = b'{"channel":"status","category":"linear","symbol":"S1USDT","seq":1,"pub_ns":5,'


def test_latency_halves_seq_holes_and_channel_counts() -> None:
    rec = _recorder()
    now = time.time_ns()
    topic = b"book.linear.S1USDT."
    # Two batches: a batch's messages share the stamp taken after it came off the socket.
    rec.take_pairs(
        [
            topic,
            _book(1, now - 300_000, now - 1_000_000),
            topic,
            _book(2, now - 200_000, now - 500_000),
        ],
        now,
    )
    rec.take_pairs(
        [
            topic,
            _book(5, now, now - 100_000),  # 3 and 4 lost
            b"status.linear.S1USDT.",
            _STATUS + b'"state":"live"}',
        ],
        now + 2_000,
    )
    result = rec.result()
    assert list(rec.latency) == [1_000_000, 500_000, 102_000]
    assert list(rec.to_publish) == [700_000, 300_000, 100_000]
    assert list(rec.from_publish) == [300_000, 200_000, 2_000]
    assert (result["seq_holes"], result["seq_lost"]) == (1, 2)
    assert result["no_seq"] == 0
    assert result["counts"] == {"book": 3, "status": 1}
    assert result["window_counts"] == {"book": 3, "status": 1}
    assert result["states"] == {"live": 1}
    assert result["topics"] == 2


def test_window_opens_at_the_first_book_not_at_an_earlier_status() -> None:
    rec = _recorder(warmup=1.0, latency=False)
    now = time.time_ns()
    topic = b"book.linear.S1USDT."
    rec.take_pairs([b"status.linear.S1USDT.", _STATUS + b'"state":"live"}'], now)
    assert rec.first is None  # a status does not open it
    rec.take_pairs([topic, _book(1, now, now), topic, _book(2, now, now)], now + 10**9 // 2)
    assert rec.first == (now + 10**9 // 2) / 1e9
    rec.take_pairs([topic, _book(3, now, now)], now + 2 * 10**9)  # after the 1 s warm-up
    result = rec.result()
    assert result["counts"] == {"book": 3, "status": 1}
    assert result["window_counts"] == {"book": 1}
    assert sum(result["buckets"]) == 1
    assert (result["seq_holes"], result["no_seq"]) == (0, 0)


def test_a_payload_without_a_readable_seq_is_counted_not_checked() -> None:
    rec = _recorder(latency=False)
    topic = b"book.linear.S1USDT."
    rec.take_pairs([topic, b'{"channel":"book","seq":x1,"pub_ns":2}', topic, b"{}"], 1)
    assert (rec.no_seq, rec.seq_holes, rec.books_seen) == (2, 0, 2)


def test_slipped_parts_stop_the_consumer() -> None:
    rec = _recorder()
    with pytest.raises(SystemExit, match="not a \\[topic, payload\\] pair"):
        rec.take_pairs([_book(1, 1, 1), b"book.linear.S1USDT."], 1)


def _envelope(kind: int, conn_id: int, seq: int) -> bytes:
    # the raw envelope header (docs/wire-format.md §1), then a frame
    return struct.pack("<BBBBIQQ", 1, kind, 0, 0, conn_id, seq, 0) + b'{"topic":"x"}'


def test_envelopes_per_connection_seq_and_a_reconnect() -> None:
    rec = _recorder(latency=False)
    data, conn_up = 0, 1
    now = time.time_ns()
    rec.take_envelopes([_envelope(data, 7, 1), _envelope(data, 7, 2), _envelope(data, 8, 1)], now)
    # 7 loses seq 3; then connection 7 comes up again and starts over at 1
    rec.take_envelopes(
        [_envelope(data, 7, 4), _envelope(conn_up, 7, 0), _envelope(data, 7, 1)], now
    )
    result = rec.result()
    assert (result["seq_holes"], result["seq_lost"]) == (1, 1)
    assert result["counts"] == {"data": 5}
    assert result["window_counts"] == {"data": 5}


@pytest.mark.parametrize("tcp", [False, True])
def test_drain_inproc_receives_every_published_message(tcp: bool) -> None:
    msgs = messages(5, 300, 10)  # conn_up, 5 snapshots, 270 deltas and 30 trade frames
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        spent, published = _run(ctx, msgs, 40, 0, tcp=tcp)
    finally:
        ctx.term()
    assert spent > 0
    # [topic, payload] pairs: at least a book per delta and a trade per trade frame.
    assert published % 2 == 0 and published // 2 >= 300


@pytest.mark.parametrize("io", [zio.PYZMQ, zio.IN_USE], ids=["pyzmq", "in-use"])
def test_drain_inproc_stamps_every_send_after_the_first_wake_up(io: zio.IO) -> None:
    msgs = messages(5, 300, 0)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        _, published = _run(ctx, msgs, 40, 0, io=io)
        stamps, firsts = handoffs(ctx, msgs, 40, 1, io)
    finally:
        ctx.term()
    wakes = -(-len(msgs) // 40)
    assert len(firsts) == wakes - 1  # every wake-up after the first published something
    sent_in_first = published // 2 - len(stamps)
    # the first wake-up: a status, book and bbo per snapshot, a book (and a bbo) per delta
    assert 0 < sent_in_first <= 3 * 40
    assert all(stamp > 0 for stamp in stamps)
    assert all(first > 0 for first in firsts)


def _wait_done(rec: Recorder, deadline_s: float = 10.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while not rec.done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("min_samples", [0, 2])
def test_window_stays_open_until_it_holds_min_samples(min_samples: int) -> None:
    args = argparse.Namespace(
        warmup=0.0,
        seconds=0.001,
        latency=True,
        verify_every=0,
        seed=1,
        min_samples=min_samples,
    )
    rec = Recorder(args)
    topic = b"book.linear.S1USDT."
    now = time.time_ns()
    rec.take_pairs([topic, _book(1, now, now)], now)  # opens the window; its one sample
    if min_samples == 0:
        assert _wait_done(rec)  # --seconds alone: closed with one sample
        assert len(rec.latency) == 1
        return
    while time.time() < rec.end:  # until --seconds is over
        time.sleep(0.001)
    assert not rec.done()  # one sample of two: kept open
    late = time.time_ns()
    assert late / 1e9 < rec.end
    rec.take_pairs([topic, _book(2, late, late)], late)
    assert len(rec.latency) == 2  # the late message counted in the window
    assert _wait_done(rec)
    assert rec.result()["window_s"] > args.seconds

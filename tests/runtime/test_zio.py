"""mdgw.runtime.zio: book_builder's drain and [topic, payload] sends, C and pyzmq alike.

Every behaviour test runs on both implementations (the C one only where the compiled build
has it) over real ZeroMQ sockets, and the two must agree; the compiled run also checks
that the C one is the one in use, the pure-Python run that it is absent.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Any

import pytest
import zmq

from mdgw import compiled
from mdgw.runtime import zio
from mdgw.testing.bench import drain_inproc, hub_inproc

IOS = [zio.PYZMQ] if zio.C_IO is None else [zio.PYZMQ, zio.C_IO]
needs_c = pytest.mark.skipif(zio.C_IO is None, reason=f"no C I/O: {zio.ACTIVE}")
# Sizes around libzmq's own limits: empty, its inline "very small message" (33 bytes) and
# one more, an envelope, a book, one larger than pyzmq's copy threshold.
SIZES = [0, 1, 33, 34, 300, 2_500, 70_000]


@pytest.fixture(params=IOS, ids=lambda io: io.name.split()[0])
def io(request: pytest.FixtureRequest) -> zio.IO:
    chosen: zio.IO = request.param
    return chosen


_names = iter(range(1_000_000))


def pair(
    ctx: zmq.Context[zmq.Socket[bytes]], hwm: int = 0
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """A PUSH connected to a PULL over inproc (each with ``hwm``; 0: no limit)."""
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    for sock in (push, pull):
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.setsockopt(zmq.LINGER, 0)
    endpoint = f"inproc://zio-{next(_names)}"
    pull.bind(endpoint)
    push.connect(endpoint)
    return push, pull


def messages(n: int) -> list[bytes]:
    return [bytes([i % 251]) * SIZES[i % len(SIZES)] + i.to_bytes(4, "big") for i in range(n)]


def test_the_compiled_build_uses_the_c_io() -> None:
    if compiled.IS_COMPILED:
        assert zio.C_IO is not None, zio.ACTIVE
        assert zio.IN_USE is zio.C_IO
        assert zio.ACTIVE.startswith("C (mdgw.runtime._zio, libzmq 4.")
    else:
        assert zio.C_IO is None
        assert zio.IN_USE.recv_batch is zio.PYZMQ.recv_batch
        assert zio.IN_USE.send_pairs is zio.PYZMQ.send_pairs
        assert zio.ACTIVE.startswith("pyzmq (")


def test_the_builder_drains_and_flushes_through_its_io(
    ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    """The real _drain and _flush on real sockets (drain_inproc's harness) go through
    ``BookBuilder.io`` for every message; the service sets it to :data:`zio.IN_USE` (its
    startup line says which, tests/book_builder checks it)."""
    calls = {"recv": 0, "received": 0, "send": 0, "sent": 0}
    real = zio.IN_USE

    def recv_batch(sock: zmq.Socket[Any], limit: int) -> tuple[list[bytes], bool]:
        batch, drained = real.recv_batch(sock, limit)
        calls["recv"] += 1
        calls["received"] += len(batch)
        return batch, drained

    def send_pairs(sock: zmq.Socket[Any], pairs: list[tuple[bytes, bytes]]) -> int:
        calls["send"] += 1
        calls["sent"] += len(pairs)
        return real.send_pairs(sock, pairs)

    msgs = hub_inproc.messages(5, 300, 10)
    _, published = drain_inproc._run(ctx, msgs, 40, 0, io=zio.IO("counted", recv_batch, send_pairs))
    assert calls["received"] == len(msgs)
    assert calls["recv"] >= len(msgs) // 40
    assert published == 2 * calls["sent"] and calls["send"] > 0


@pytest.mark.parametrize("limit", [1, 7, 100, 2048])
def test_bytes_in_are_bytes_out_in_order_across_batches(
    io: zio.IO, ctx: zmq.Context[zmq.Socket[bytes]], limit: int
) -> None:
    push, pull = pair(ctx)
    sent = messages(300)
    for msg in sent:
        push.send(msg)
    got: list[bytes] = []
    while True:
        batch, drained = io.recv_batch(pull, limit)
        assert all(type(m) is bytes for m in batch)
        got += batch
        if len(batch) < limit:  # the socket ran out first
            assert drained
            break
        assert len(batch) == limit and not drained  # the limit ended it: not re-armed
    assert got == sent
    assert io.recv_batch(pull, limit) == ([], True)


def test_exactly_the_limit_waiting_is_not_drained_yet(
    io: zio.IO, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    push, pull = pair(ctx)
    for msg in messages(5):
        push.send(msg)
    assert io.recv_batch(pull, 5) == (messages(5), False)  # the limit: no EAGAIN seen yet
    assert io.recv_batch(pull, 5) == ([], True)
    assert io.recv_batch(pull, 0) == ([], False)


def test_frames_of_a_multipart_message_are_messages_of_the_batch(
    io: zio.IO, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """As pyzmq's recv always did in the builder's drain: one frame per receive."""
    push, pull = pair(ctx)
    push.send_multipart([b"a", b"bb", b"ccc"])
    assert io.recv_batch(pull, 10) == ([b"a", b"bb", b"ccc"], True)


def wait_subscribed(pub: zmq.Socket[bytes], sub: zmq.Socket[bytes]) -> None:
    """PUB/SUB joins asynchronously: send a probe until one comes through."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pub.send_multipart([b"probe", b""])
        if sub.poll(50):
            while sub.poll(50):
                sub.recv_multipart()
            return
    raise AssertionError("the subscriber never received the probe")


def test_a_subscriber_gets_every_pair_intact(
    io: zio.IO, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    for sock in (pub, sub):
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
    endpoint = f"inproc://zio-{next(_names)}"
    pub.bind(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    wait_subscribed(pub, sub)
    payloads = messages(500)
    pairs = [(f"book.linear.S{i % 13}USDT.".encode(), p) for i, p in enumerate(payloads)]
    assert io.send_pairs(pub, pairs) == 0
    got: list[tuple[bytes, ...]] = []
    while len(got) < len(pairs):
        assert sub.poll(10_000), f"{len(got)} of {len(pairs)}"
        got.append(tuple(sub.recv_multipart()))
    assert got == pairs
    assert not sub.poll(0)


def test_pairs_refused_at_a_full_queue_are_counted_and_the_rest_arrive_whole(
    ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    """A PUSH at its HWM refuses with EAGAIN (a PUB drops by itself): both implementations
    count the same pairs, and what got through is the first pairs, each whole."""
    outcomes = []
    for io in IOS:
        push, pull = pair(ctx, hwm=10)
        pairs = [(b"t%d" % i, p) for i, p in enumerate(messages(100))]
        dropped = io.send_pairs(push, pairs)
        got: list[tuple[bytes, ...]] = []
        while pull.poll(0):
            got.append(tuple(pull.recv_multipart(zmq.NOBLOCK)))
        assert 0 < dropped < len(pairs)
        assert got == pairs[: len(pairs) - dropped]
        outcomes.append(dropped)
        alone = ctx.socket(zmq.PUSH)  # no peer at all: every pair refused
        alone.setsockopt(zmq.LINGER, 0)
        alone.bind(f"inproc://zio-{next(_names)}")
        assert io.send_pairs(alone, pairs[:5]) == 5
        assert io.send_pairs(alone, []) == 0
    assert len(set(outcomes)) == 1, outcomes


def test_a_closed_socket_raises_enotsock(io: zio.IO, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    push, pull = pair(ctx)
    push.close()
    pull.close()
    with pytest.raises(zmq.ZMQError) as caught:
        io.recv_batch(pull, 10)
    assert caught.value.errno == zmq.ENOTSOCK
    with pytest.raises(zmq.ZMQError) as caught:
        io.send_pairs(push, [(b"t", b"p")])
    assert caught.value.errno == zmq.ENOTSOCK


def test_other_errors_raise_zmq_errors(io: zio.IO, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    push, pull = pair(ctx)
    with pytest.raises(zmq.ZMQError) as caught:
        io.recv_batch(push, 10)  # a PUSH cannot receive
    assert caught.value.errno == zmq.ENOTSUP
    with pytest.raises(zmq.ZMQError) as caught:
        io.send_pairs(pull, [(b"t", b"p")])  # a PULL cannot send
    assert caught.value.errno == zmq.ENOTSUP
    assert not isinstance(caught.value, zmq.Again)


@needs_c
def test_c_bad_handles_and_arguments_raise() -> None:
    from mdgw.runtime import _zio

    with pytest.raises(zmq.ZMQError) as caught:
        _zio.recv_batch(0, 10)  # libzmq checks NULL
    assert caught.value.errno == zmq.ENOTSOCK
    with pytest.raises(zmq.ZMQError) as caught:
        _zio.send_pairs(0, [(b"t", b"p")])
    assert caught.value.errno == zmq.ENOTSOCK
    assert _zio.send_pairs(0, []) == 0
    with pytest.raises(TypeError):
        _zio.recv_batch("0", 10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _zio.recv_batch(0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _zio.send_pairs(0, ((b"t", b"p"),))  # type: ignore[arg-type]
    for bad in ([(b"t",)], [(b"t", "p")], [[b"t", b"p"]], [(b"t", b"p", b"x")], [None]):
        with pytest.raises(TypeError):
            _zio.send_pairs(0, bad)  # type: ignore[arg-type]
    with pytest.raises(ImportError):
        _zio.load("/nonexistent/libzmq.so", zmq.ZMQError)


def _rss_bytes() -> int:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@needs_c
def test_c_no_refcount_or_memory_leaks(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    assert zio.C_IO is not None
    recv_batch, send_pairs = zio.C_IO.recv_batch, zio.C_IO.send_pairs
    push, pull = pair(ctx)
    topic, payload = b"book.linear.LEAKUSDT.", b"x" * 2_500
    pairs = [(topic, payload)] * 50
    refs = [sys.getrefcount(o) for o in (topic, payload, pairs, pairs[0])]
    for _ in range(200):  # warm-up: libzmq's and Python's allocators settle
        send_pairs(push, pairs)
        recv_batch(pull, 1000)
    gc.collect()
    blocks = sys.getallocatedblocks()
    rss = _rss_bytes()
    for _ in range(2_000):
        assert send_pairs(push, pairs) == 0
        got, drained = recv_batch(pull, 1000)
        assert len(got) == 100 and drained
        del got
    gc.collect()
    assert [sys.getrefcount(o) for o in (topic, payload, pairs, pairs[0])] == refs
    assert sys.getallocatedblocks() - blocks < 100  # 200,000 leaked bytes objects would show
    # libzmq's message buffers are malloc'd, which Python's block count does not see:
    # 100,000 unclosed 2.5 KB messages would be 250 MB.
    assert _rss_bytes() - rss < 50_000_000
    failing: Any = [(b"t", "p")]
    for _ in range(1_000):
        with pytest.raises(TypeError):
            send_pairs(push, failing)
        with pytest.raises(zmq.ZMQError):
            recv_batch(push, 10)
    gc.collect()
    assert sys.getallocatedblocks() - blocks < 100


def _terminating(
    n: int,
) -> tuple[zmq.Context[zmq.Socket[bytes]], list[zmq.Socket[bytes]], threading.Thread]:
    """A context whose ``term()`` has begun in another thread, with a PULL (``n`` messages
    waiting, one of them received) and a PUB made before it began: libzmq has sent both
    its stop command, which they read at their next look at their commands. A probe socket,
    made after them (so stopped after them), shows when the stop has been sent."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push, pull = pair(ctx)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"inproc://zio-{next(_names)}")
    probe = ctx.socket(zmq.PUB)
    probe.setsockopt(zmq.LINGER, 0)
    for i in range(n):
        push.send(i.to_bytes(4, "big"))
    assert pull.recv() == (0).to_bytes(4, "big")  # the pipe attached, before the stop
    terminator = threading.Thread(target=ctx.term, daemon=True)
    terminator.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            probe.getsockopt(zmq.EVENTS)  # reads the probe's commands
        except zmq.ZMQError as exc:
            assert exc.errno == zmq.ETERM
            break
        assert time.monotonic() < deadline, "the context's term() sent no stop"
        time.sleep(0.001)
    return ctx, [push, pull, pub, probe], terminator


def _close(socks: list[zmq.Socket[bytes]], terminator: threading.Thread) -> None:
    for sock in socks:
        sock.close(linger=0)
    terminator.join(30)
    assert not terminator.is_alive()


def test_an_error_in_the_middle_of_a_batch_keeps_what_was_received(io: zio.IO) -> None:
    """libzmq looks at a socket's commands every 100 receives: the one that finds the
    context's stop fails (ETERM) with messages still waiting, after some were received in
    this batch. The batch ends there, not drained, with every message received so far, in
    order; the next call, with none in hand, raises ETERM."""
    _ctx, socks, terminator = _terminating(500)
    _push, pull = socks[0], socks[1]
    try:
        batch, drained = io.recv_batch(pull, 1_000)
        assert 0 < len(batch) < 499  # stopped in the middle: more were waiting
        assert batch == [i.to_bytes(4, "big") for i in range(1, 1 + len(batch))]
        assert drained is False
        with pytest.raises(zmq.ZMQError) as caught:
            io.recv_batch(pull, 1_000)
        assert caught.value.errno == zmq.ETERM
    finally:
        _close(socks, terminator)


def test_an_error_in_the_middle_of_the_sends_raises(io: zio.IO) -> None:
    """A PUB with no subscriber takes every pair (and drops it); once the context's stop
    is read, a send fails with ETERM, which is not a full queue: it raises, not counted."""
    _ctx, socks, terminator = _terminating(1)
    pub = socks[2]
    try:
        with pytest.raises(zmq.ZMQError) as caught:
            for _ in range(1_000):  # libzmq reads commands at most every ~1 ms of sends
                io.send_pairs(pub, [(b"topic.", b"p" * 100)] * 1_000)
        assert caught.value.errno == zmq.ETERM
    finally:
        _close(socks, terminator)

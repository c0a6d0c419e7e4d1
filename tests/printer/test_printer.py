"""``python -m mdgw.printer`` against real ZeroMQ sockets on loopback.

The test plays the book builder: an XPUB socket (a PUB that also shows the subscriptions it
receives, so the test knows when the printer listens) and a ROUTER answering snapshot
requests, both on random 127.0.0.1 ports, publishing hand-made wire messages. The printer
runs as a subprocess with MDGW_CONFIG pointing at a config naming those ports.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
import zmq

from mdgw.core import wire
from mdgw.testing import oracles

BASE_NS = 1_750_000_000_000_000_000
T = 15.0  # seconds: generous deadline for anything a test waits for (a busy CI box)


def pub_ns(seq: int) -> int:
    """Publish time of message ``seq``: one publisher, later seq is later."""
    return BASE_NS + seq * 1_000_000


def book(
    symbol: str, seq: int, category: str = "linear", bid: str = "100.5", ns: int | None = None
) -> tuple[bytes, bytes]:
    payload = oracles.encode_book(
        category,
        symbol,
        seq=seq,
        pub_ns=pub_ns(seq) if ns is None else ns,
        recv_ns=(pub_ns(seq) if ns is None else ns) - 50_000,
        u=1000 + seq,
        ts=1,
        cts=1,
        depth=1,
        bids=[(bid, "2")],
        asks=[("101", "3")],
    )
    return wire.topic("book", category, symbol), payload


class Gateway:
    """The test's stand-in for book_builder's pub and snapshot sockets."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.pub_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.snapshot_port = self.router.bind_to_random_port("tcp://127.0.0.1")

    def close(self) -> None:
        self.pub.close()
        self.router.close()
        self.ctx.term()

    def wait_subscription(self) -> bytes:
        """The next subscription a printer sent (without the 0x01 in front)."""
        assert self.pub.poll(int(T * 1000)), "the printer did not subscribe"
        message = self.pub.recv()
        assert message[:1] == b"\x01", message
        return message[1:]

    def wait_request(self) -> tuple[list[bytes], bytes]:
        """``(envelope, prefix)`` of the next snapshot request.

        The envelope is ``[identity]`` from a DEALER (the printer), ``[identity, b""]``
        from a REQ socket.
        """
        assert self.router.poll(int(T * 1000)), "no snapshot request"
        *envelope, request = self.router.recv_multipart()
        return envelope, request

    def reply(self, envelope: list[bytes], prefix: bytes, items: list[tuple[bytes, bytes]]) -> None:
        self.router.send_multipart([*envelope, *wire.encode_snapshot_reply(items, prefix)])

    def publish(self, *messages: tuple[bytes, bytes]) -> None:
        for topic, payload in messages:
            self.pub.send_multipart([topic, payload])


class Printer:
    """A printer subprocess whose stdout and stderr lines are read by threads."""

    def __init__(self, args: list[str], config: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
        env["MDGW_CONFIG"] = str(config)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mdgw.printer", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.pumps = [
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream: IO[bytes], lines: queue.Queue[str]) -> None:
        with stream:  # closed at EOF, when the printer has exited
            for raw in stream:
                lines.put(raw.decode())

    def line(self) -> str:
        try:
            return self.out.get(timeout=T)
        except queue.Empty:
            pytest.fail(f"no output line; stderr: {self.errors()}")

    def json(self) -> dict[str, Any]:
        obj = orjson.loads(self.line())
        assert isinstance(obj, dict)
        return obj

    def errors(self) -> list[str]:
        lines = []
        while True:
            try:
                lines.append(self.err.get_nowait())
            except queue.Empty:
                return lines

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the printer and wait for its exit and for the threads to have read every
        line it wrote (they end at EOF; without this a last line could still be in the pipe
        when a test reads ``errors()``, on a busy machine)."""
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=T)
        for pump in self.pumps:
            pump.join(timeout=T)
            assert not pump.is_alive(), "the printer's output was not read to its end"
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    yield gw
    gw.close()


@pytest.fixture
def config(tmp_path: Path, gateway: Gateway) -> Path:
    path = tmp_path / "printer.toml"
    path.write_text(
        "[zmq]\n"
        f'pub = "tcp://127.0.0.1:{gateway.pub_port}"\n'
        f'snapshot = "tcp://127.0.0.1:{gateway.snapshot_port}"\n'
    )
    return path


@pytest.fixture
def run_printer(config: Path) -> Iterator[Any]:
    printers: list[Printer] = []

    def start(*args: str) -> Printer:
        printer = Printer(list(args), config)
        printers.append(printer)
        return printer

    yield start
    for printer in printers:
        printer.kill()


def test_late_joiner_prints_the_snapshot_then_newer_updates_and_resnapshots_a_hole(
    gateway: Gateway, run_printer: Any
) -> None:
    printer = run_printer("book.linear.BTCUSDT", "--json")
    assert gateway.wait_subscription() == b"book.linear.BTCUSDT."
    envelope, prefix = gateway.wait_request()
    assert prefix == b"book.linear.BTCUSDT."
    gateway.reply(envelope, prefix, [book("BTCUSDT", 5)])
    assert printer.json()["seq"] == 5

    # 4 and 5 were queued before the snapshot was taken; 6 is news; ETHUSDT is not ours.
    gateway.publish(book("BTCUSDT", 4), book("BTCUSDT", 5), book("ETHUSDT", 1), book("BTCUSDT", 6))
    first = printer.json()
    assert (first["symbol"], first["seq"], first["topic"]) == ("BTCUSDT", 6, "book.linear.BTCUSDT.")

    gateway.publish(book("BTCUSDT", 8))  # 7 is lost
    assert printer.json()["seq"] == 8
    envelope, prefix = gateway.wait_request()  # the printer asks again for that topic
    assert prefix == b"book.linear.BTCUSDT."
    gateway.reply(envelope, prefix, [book("BTCUSDT", 9)])
    assert printer.json()["seq"] == 9
    gateway.publish(book("BTCUSDT", 9), book("BTCUSDT", 10))
    assert printer.json()["seq"] == 10

    assert printer.stop() == 0
    errors = printer.errors()
    assert len(errors) == 1, errors
    assert "seq hole on 'book.linear.BTCUSDT.': expected 7, got 8" in errors[0]
    assert printer.out.empty()


def test_a_restarted_book_builder_is_followed_from_seq_1(
    gateway: Gateway, run_printer: Any
) -> None:
    printer = run_printer("book.linear.BTCUSDT", "--json")
    gateway.wait_subscription()
    envelope, prefix = gateway.wait_request()
    gateway.reply(envelope, prefix, [])
    gateway.publish(book("BTCUSDT", 700), book("BTCUSDT", 701))
    assert [printer.json()["seq"] for _ in range(2)] == [700, 701]
    # A new builder: seq starts again, publish times go on.
    later = pub_ns(701) + 1
    gateway.publish(book("BTCUSDT", 1, ns=later))
    assert printer.json()["seq"] == 1
    envelope, prefix = gateway.wait_request()
    assert prefix == b"book.linear.BTCUSDT."
    gateway.reply(envelope, prefix, [book("BTCUSDT", 2, ns=later + 1)])
    assert printer.json()["seq"] == 2
    gateway.publish(book("BTCUSDT", 2, ns=later + 1), book("BTCUSDT", 3, ns=later + 2))
    assert printer.json()["seq"] == 3
    assert printer.stop() == 0
    errors = printer.errors()
    assert len(errors) == 1, errors
    assert "seq went back on 'book.linear.BTCUSDT.': 1 after 701" in errors[0]


def test_one_symbol_never_gets_another_that_it_prefixes(gateway: Gateway, run_printer: Any) -> None:
    printer = run_printer("book.inverse.BTCUSD", "--json", "--no-snapshot")
    assert gateway.wait_subscription() == b"book.inverse.BTCUSD."
    gateway.publish(book("BTCUSDH26", 1, "inverse"), book("BTCUSD", 1, "inverse"))
    assert printer.json()["symbol"] == "BTCUSD"
    gateway.publish(book("BTCUSDH26", 2, "inverse"), book("BTCUSD", 2, "inverse"))
    got = printer.json()
    assert (got["symbol"], got["seq"]) == ("BTCUSD", 2)
    assert printer.stop() == 0


def test_json_lines_are_the_payload_plus_the_topic(gateway: Gateway, run_printer: Any) -> None:
    printer = run_printer("--json")
    assert gateway.wait_subscription() == b""
    envelope, prefix = gateway.wait_request()
    assert prefix == b""
    gateway.reply(envelope, prefix, [])
    trade = wire.encode_trade(
        "spot", "ETHUSDT", seq=1, pub_ns=pub_ns(1), recv_ns=pub_ns(1) - 1, trade_id="t1",
        price="3000", size="0.1", side="buy", ts=1, block=False,
    )  # fmt: skip
    status = wire.encode_status(
        "inverse", "BTCUSD", seq=1, pub_ns=pub_ns(1), state="resyncing", reason="u gap at u=9"
    )
    gateway.publish(
        (wire.topic("trade", "spot", "ETHUSDT"), trade),
        (wire.topic("status", "inverse", "BTCUSD"), status),
    )
    assert printer.json() == {**orjson.loads(trade), "topic": "trade.spot.ETHUSDT."}
    assert printer.json() == {**orjson.loads(status), "topic": "status.inverse.BTCUSD."}
    assert printer.stop(signal.SIGINT) == 0
    assert printer.errors() == []


def test_readable_lines(gateway: Gateway, run_printer: Any) -> None:
    printer = run_printer("book")
    assert gateway.wait_subscription() == b"book."
    envelope, prefix = gateway.wait_request()
    gateway.reply(envelope, prefix, [book("BTCUSDT", 3)])
    snap = printer.line()
    assert " book   linear  BTCUSDT     100.5 x 2 | 101 x 3  spread 0.5  seq 3  " in snap
    assert "recv->pub 50µs" in snap
    assert snap.endswith("(snapshot)\n")
    gateway.publish(book("BTCUSDT", 4, bid="100.75"))
    assert "100.75 x 2 | 101 x 3  spread 0.25  seq 4  " in printer.line()
    assert printer.stop() == 0


def test_a_snapshot_that_does_not_come_is_a_warning_then_live_updates(
    gateway: Gateway, run_printer: Any
) -> None:
    printer = run_printer("book.linear", "--json", "--snapshot-timeout", "0.3")
    assert gateway.wait_subscription() == b"book.linear."
    gateway.wait_request()  # and never answer
    deadline = time.monotonic() + T
    while printer.err.empty() and time.monotonic() < deadline:
        time.sleep(0.02)
    errors = printer.errors()
    assert len(errors) == 1 and "no reply within 0.3s" in errors[0], errors
    gateway.publish(book("BTCUSDT", 41))
    assert printer.json()["seq"] == 41
    assert printer.stop() == 0


def test_malformed_messages_are_skipped_with_a_warning(gateway: Gateway, run_printer: Any) -> None:
    printer = run_printer("--json", "--no-snapshot")
    gateway.wait_subscription()
    gateway.pub.send_multipart([b"book.linear.BTCUSDT.", b"not json"])
    gateway.pub.send(b"one frame")
    gateway.publish(book("BTCUSDT", 1))
    assert printer.json()["seq"] == 1
    assert printer.stop() == 0
    errors = printer.errors()
    assert len(errors) == 2, errors
    assert "not valid UTF-8 JSON" in errors[0]
    assert "1 frames" in errors[1]


def test_a_closed_stdout_ends_the_printer_quietly(gateway: Gateway, config: Path) -> None:
    # Our own pipe, read without a thread, so that closing it cannot race a reader.
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdgw.printer", "--no-snapshot"],
        stdout=write_fd,
        stderr=subprocess.PIPE,
        env={**env, "MDGW_CONFIG": str(config)},
    )
    os.close(write_fd)
    try:
        gateway.wait_subscription()
        gateway.publish(book("BTCUSDT", 1))
        assert select.select([read_fd], [], [], T)[0], "no output"
        assert os.read(read_fd, 65536).endswith(b"\n")
        os.close(read_fd)  # what `| head -n 1` does after its line
        seq = 2
        deadline = time.monotonic() + T
        while proc.poll() is None and time.monotonic() < deadline:
            gateway.publish(book("BTCUSDT", seq))
            seq += 1
            time.sleep(0.02)
        assert proc.wait(timeout=T) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes the stderr pipe


def test_bad_topic_spec_exits_64(config: Path) -> None:
    env = {**os.environ, "MDGW_CONFIG": str(config)}
    result = subprocess.run(
        [sys.executable, "-m", "mdgw.printer", "book.linear", "books.linear.BTCUSDT"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=T * 2,
    )
    assert result.returncode == 64
    assert result.stdout == ""
    assert "unknown channel 'books'" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_bad_option_exits_64(config: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mdgw.printer", "--jsn"],
        check=False,
        capture_output=True,
        timeout=T * 2,
    )
    assert result.returncode == 64


def test_bad_config_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[zmq]\npub = "tcp://127.0.0.1:1"\npubb = 1\n')
    result = subprocess.run(
        [sys.executable, "-m", "mdgw.printer", "--config", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        timeout=T * 2,
    )
    assert result.returncode == 78
    assert "zmq.pubb" in result.stderr


CONSUMER_EXAMPLE = Path(__file__).parents[2] / "scripts" / "consumer_example.py"


def test_the_consumer_example_of_the_docs_works(gateway: Gateway) -> None:
    topic = "book.linear.BTCUSDT."
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CONSUMER_EXAMPLE),
            f"tcp://127.0.0.1:{gateway.pub_port}",
            f"tcp://127.0.0.1:{gateway.snapshot_port}",
            topic,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gateway.wait_subscription() == topic.encode()
        envelope, prefix = gateway.wait_request()
        assert envelope[1:] == [b""]  # a REQ client
        gateway.reply(envelope, prefix, [book("BTCUSDT", 5)])
        gateway.publish(book("BTCUSDT", 4), book("BTCUSDT", 5), book("BTCUSDT", 6))
        gateway.publish(book("BTCUSDT", 8), book("BTCUSDTX", 9))
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == f"snapshot {{'{topic}': 5}}\n"
        assert proc.stdout.readline() == f"{topic} 6 [['100.5', '2']] [['101', '3']]\n"
        assert proc.stdout.readline() == f"{topic} 8 [['100.5', '2']] [['101', '3']]\n"
        assert proc.stderr.readline() == f"hole in {topic}: 7..7\n"
    finally:
        proc.kill()
        proc.communicate()  # reaps it and closes the pipes


def test_the_docs_show_the_consumer_example_as_it_is() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    code = CONSUMER_EXAMPLE.read_text()
    body = code[code.index("import json") :]
    assert body in docs, "docs/operations.md must quote scripts/consumer_example.py verbatim"

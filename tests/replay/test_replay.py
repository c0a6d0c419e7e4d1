"""``python -m mdgw.replay`` on journals written by the real writer with a known clock.

Each record's wall time is set by the test, so ``--from``/``--to`` boundaries are exact;
``--topics`` is checked against the full replay; tears at every byte of a segment replay
exactly the records before them; holes make every book resync; the raw export.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq

from mdgw.book_builder.journal import Journal
from mdgw.core import wire
from mdgw.core.hub import Hub
from mdgw.core.journal_format import InputKind
from mdgw.replay.__main__ import main as replay_main
from mdgw.replay.reader import SegmentReader, find_segments
from mdgw.replay.service import Progress, Replayer, Selection
from mdgw.runtime.settings import JournalConfig
from mdgw.testing import oracles

ROOT = Path(__file__).parents[2]
HUB = {
    "publish_depth": 2,
    "resync_timeout": 5.0,
    "resync_min_interval": 1.0,
    "ingestor_timeout": 3.0,
    "stale_after": 60.0,
}
T0 = 1_764_684_000_000_000_000  # 2025-12-02T14:00:00Z
SECOND = 1_000_000_000
RAW = int(InputKind.RAW)
TICK = int(InputKind.TICK)


def frame(symbol: str, u: int, *, snapshot: bool) -> bytes:
    size = str(u)
    data = {"s": symbol, "b": [["100", size]], "a": [["101", "1"]], "u": u, "seq": u}
    return orjson.dumps(
        {
            "topic": f"orderbook.50.{symbol}",
            "type": "snapshot" if snapshot else "delta",
            "ts": 1000 + u,
            "cts": 999 + u,
            "data": data,
        }
    )


def envelope(seq: int, recv_ns: int, payload: bytes) -> bytes:
    return oracles.encode_raw(
        wire.EnvelopeKind.DATA,
        ingestor=b"ing",
        category=wire.category_code("linear"),
        conn_id=1,
        seq=seq,
        recv_ns=recv_ns,
        frame=payload,
    )


class Clock:
    def __init__(self) -> None:
        self.ns = T0

    def __call__(self) -> int:
        return self.ns


def write_journal(directory: Path, steps: int = 10) -> None:
    """Record i at T0 + i s: BTCUSDT and ETHUSDT at u = i + 1 (snapshots at i = 0), a tick."""
    clock = Clock()
    journal = Journal(JournalConfig(enabled=True, dir=str(directory)), HUB, {}, clock_ns=clock)
    journal.open()
    journal.start()
    seq = 0
    for i in range(steps):
        clock.ns = T0 + i * SECOND
        items = []
        for symbol in ("BTCUSDT", "ETHUSDT"):
            seq += 1
            items.append(envelope(seq, clock.ns - 1000, frame(symbol, i + 1, snapshot=i == 0)))
        journal.add(RAW, 100.0 + i, items)
        journal.add(TICK, 100.0 + i + 0.5)
    journal.close()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "journal"
    write_journal(directory)
    yield directory


def replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
    return subprocess.run(
        [sys.executable, "-m", "mdgw.replay", *map(str, args)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_full_replay_publishes_what_the_hub_published(journal_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    done = replay("--out", out, journal_dir)
    assert done.returncode == 0, done.stderr
    got = lines(out)
    books = [m for m in got if m["channel"] == "book" and m["symbol"] == "BTCUSDT"]
    assert [m["u"] for m in books] == list(range(1, 11))
    assert [m["seq"] for m in books] == list(range(1, 11))
    assert [m["recv_ns"] for m in books] == [T0 + i * SECOND - 1000 for i in range(10)]
    assert books[3]["bids"] == [["100", "4"]] and books[3]["topic"] == "book.linear.BTCUSDT."
    statuses = [m for m in got if m["channel"] == "status"]
    assert [(m["symbol"], m["state"]) for m in statuses] == [
        ("BTCUSDT", "live"),
        ("ETHUSDT", "live"),
    ]
    # Not a terminal: no progress line, only the summary.
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("replay: 20 records")


def test_from_to_and_topics_select_exactly(journal_dir: Path, tmp_path: Path) -> None:
    full = tmp_path / "all.jsonl"
    assert replay("--out", full, journal_dir).returncode == 0
    everything = lines(full)

    part = tmp_path / "part.jsonl"
    done = replay(
        "--from",
        "2025-12-02T14:00:03Z",
        "--to",
        "2025-12-02T14:00:06+00:00",
        "--topics",
        "book.linear.BTCUSDT",
        "bbo",
        "--out",
        part,
        journal_dir,
    )
    assert done.returncode == 0, done.stderr
    got = lines(part)
    # Inputs taken in at 14:00:03, :04 and :05 (u = 4, 5, 6); :06 is excluded.
    expected = [
        m
        for m in everything
        if 4 <= m.get("u", 0) <= 6
        and (m["topic"] == "book.linear.BTCUSDT." or m["channel"] == "bbo")
    ]
    assert [(m["topic"], m["seq"]) for m in got] == [(m["topic"], m["seq"]) for m in expected]
    # The same with the journal after --topics (which takes every word after it).
    again = tmp_path / "again.jsonl"
    args = ["--from", "2025-12-02T14:00:03Z", "--to", "2025-12-02T14:00:06Z", "--out", again]
    assert (
        replay_main([*map(str, args), "--topics", "book.linear.BTCUSDT", "bbo", str(journal_dir)])
        == 0
    )
    assert again.read_bytes().count(b"\n") == len(got)
    assert {m["channel"] for m in got} == {"book", "bbo"}
    # The hub was fed from the start: seq numbers are the live ones, not restarted.
    assert got[0]["seq"] == 4
    strip = [{k: v for k, v in m.items() if k != "pub_ns"} for m in got]
    assert strip == [{k: v for k, v in m.items() if k != "pub_ns"} for m in expected]


def test_bad_usage_and_missing_journals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In process (argument handling is all main() does before reading): quick.
    assert replay_main(["--out", str(tmp_path / "x"), str(tmp_path / "nothing")]) == 66
    (tmp_path / "empty").mkdir()
    assert replay_main(["--out", str(tmp_path / "x"), str(tmp_path / "empty")]) == 66
    out = ["--out", str(tmp_path / "x")]
    for bad in (
        ["--topics", "nochannel", *out],
        ["--speed", "0", *out],
        ["--from", "yesterday", *out],
        ["--from", "2025-12-02T14:00:03", "--to", "2025-12-02T14:00:01", *out],
        ["--export", "raw", "--pub", "ipc:///tmp/x"],
        ["--export", "raw", "--topics", "book", *out],
        ["--pub", "nonsense://x"],
        [],  # neither --pub nor --out
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as caught:
            replay_main([*bad, str(tmp_path)])
        assert caught.value.code == 64, bad
        assert "error:" in capsys.readouterr().err


def test_a_tear_at_any_byte_replays_every_record_before_it(
    journal_dir: Path, tmp_path: Path
) -> None:
    (segment,) = journal_dir.glob("*.mdj")
    data = segment.read_bytes()
    reference = list(SegmentReader(find_segments([segment])[0][0]))
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    cut = cut_dir / segment.name
    header_end = data.index(b"CH")  # the first chunk
    for end in range(header_end, len(data) + 1, max(1, (len(data) - header_end) // 60)):
        cut.write_bytes(data[:end])
        (found,), _ = find_segments([cut])
        reader = SegmentReader(found)
        got = list(reader)
        assert got == reference[: len(got)]
        if end < len(data):
            assert reader.tear is not None and reader.tear.records == len(got)
            assert reader.tear.offset <= end
    cut.write_bytes(data)
    reader = SegmentReader(find_segments([cut])[0][0])
    assert list(reader) == reference and reader.tear is None

    cut.write_bytes(data[: len(data) - 3])
    done = replay("--out", tmp_path / "torn.jsonl", cut)
    assert done.returncode == 0
    assert f"{cut.name}: torn at byte" in done.stderr and "1 tear(s)" in done.stderr
    # A header cut short: the file is reported and skipped.
    cut.write_bytes(data[:10])
    done = replay("--out", tmp_path / "torn.jsonl", cut)
    assert done.returncode == 66 and "segment header torn" in done.stderr


class ListSink:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, dict[str, Any]]] = []

    def emit(self, outbox: list[tuple[bytes, bytes]]) -> int:
        self.messages.extend((t, orjson.loads(p)) for t, p in outbox)
        return len(outbox)

    def close(self) -> None:
        pass


def test_a_hole_makes_every_book_resync_until_its_next_snapshot(tmp_path: Path) -> None:
    clock = Clock()
    directory = tmp_path / "journal"
    journal = Journal(
        JournalConfig(enabled=True, dir=str(directory)),
        HUB,
        {},
        clock_ns=clock,
        queue_max_batches=1,
    )
    journal.open()
    journal.add(RAW, 1.0, [envelope(1, T0, frame("BTCUSDT", 1, snapshot=True))])
    journal.hand_over()
    clock.ns += SECOND
    journal.add(RAW, 2.0, [envelope(2, T0, frame("BTCUSDT", 2, snapshot=False))])
    journal.hand_over()  # lost: the writer is not running
    journal.start()
    clock.ns += SECOND
    journal.add(RAW, 3.0, [envelope(3, T0, frame("BTCUSDT", 3, snapshot=False))])
    journal.add(RAW, 3.5, [envelope(4, T0, frame("BTCUSDT", 10, snapshot=True))])
    journal.close()

    sink = ListSink()
    warnings: list[str] = []
    segments, _ = find_segments([directory])
    summary = Replayer(sink, Selection(), warn=warnings.append).run(segments)
    assert len(summary.holes) == 1 and "1 inputs (1 envelopes)" in summary.holes[0]
    shown = [(m["channel"], m.get("u"), m.get("state"), m.get("reason")) for _, m in sink.messages]
    assert shown == [
        ("status", None, "live", "snapshot"),
        ("book", 1, None, None),
        ("bbo", 1, None, None),
        ("status", None, "resyncing", "journal hole"),  # not continued across the hole
        ("status", None, "live", "snapshot"),
        ("book", 10, None, None),
        ("bbo", 10, None, None),
    ]


def test_export_raw_writes_receive_time_and_frame_lines(journal_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.txt.gz"
    done = replay("--export", "raw", "--out", out, journal_dir)
    assert done.returncode == 0, done.stderr
    text = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert len(text) == 20
    stamp, rest = text[0].split(" ", 1)
    assert stamp == "2025-12-02T13:59:59.999999Z"  # recv_ns = T0 - 1 µs
    assert orjson.loads(rest) == orjson.loads(frame("BTCUSDT", 1, snapshot=True))
    plain = tmp_path / "raw.txt"
    assert (
        replay(
            "--export", "raw", "--from", "2025-12-02T14:00:09Z", "--out", plain, journal_dir
        ).returncode
        == 0
    )
    assert len(plain.read_text().splitlines()) == 2


def test_pub_publishes_what_out_writes(journal_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    assert replay("--out", out, journal_dir).returncode == 0
    expected = [(m.pop("topic"), m) for m in lines(out)]
    endpoint = f"ipc://{tmp_path}/replay.sock"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"")
    sub.connect(endpoint)  # before the replay binds: it waits for this subscriber
    config = tmp_path / "gateway.toml"
    config.write_text("")
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mdgw.replay",
                "--config",
                str(config),
                "--speed",
                "max",
                "--pub",
                endpoint,
                str(journal_dir),
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        got: list[tuple[str, dict[str, Any]]] = []
        while len(got) < len(expected):
            assert sub.poll(20_000), f"got {len(got)} of {len(expected)}"
            topic, payload = sub.recv_multipart()
            got.append((topic.decode(), orjson.loads(payload)))
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        with proc.stderr:
            assert "0 hole(s)" in proc.stderr.read()
    finally:
        ctx.destroy(linger=0)
    strip = [(t, {k: v for k, v in m.items() if k != "pub_ns"}) for t, m in got]
    assert strip == [(t, {k: v for k, v in m.items() if k != "pub_ns"}) for t, m in expected]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_after_two_seconds_only() -> None:
    quiet = io.StringIO()
    Progress(quiet).update(10, T0)
    assert quiet.getvalue() == ""
    screen = Terminal()
    progress = Progress(screen)
    progress.update(10, T0)
    assert screen.getvalue() == ""  # the first 2 s: a short replay shows nothing
    progress.started -= 3.0
    progress.next_at = 0.0
    progress.update(12_345, T0 + SECOND)
    line = screen.getvalue()
    assert line.startswith("\r12,345 records read, recorded time 2025-12-02T14:00:01.000000Z, ")
    assert "records/s" in line
    progress.done()
    assert screen.getvalue().endswith("\r\x1b[K")


def test_speed_keeps_the_recorded_pacing_scaled(journal_dir: Path) -> None:
    segments, _ = find_segments([journal_dir])
    sink = ListSink()
    started = time.monotonic()
    Replayer(sink, Selection(speed=6.0), warn=print).run(segments)
    took = time.monotonic() - started
    # Outputs recorded at T0 .. T0 + 9 s: 9 s / 6 = 1.5 s at least (and not much more).
    assert 1.5 <= took < 6.0, took
    started = time.monotonic()
    Replayer(ListSink(), Selection(), warn=print).run(segments)
    assert time.monotonic() - started < 1.5  # max: flat out


def test_a_conflating_builder_replays_its_timed_publishes(tmp_path: Path) -> None:
    """books.max_rate: the builder journals each hub.publish_due (InputKind.PUBLISH_DUE), and
    the replay publishes the same conflated books at the same points."""
    directory = tmp_path / "journal"
    clock = Clock()
    hub_config = {**HUB, "max_rate": 1.0}  # at most one book a second
    journal = Journal(
        JournalConfig(enabled=True, dir=str(directory)), hub_config, {}, clock_ns=clock
    )
    journal.open()
    journal.start()
    for i in range(5):  # u 1..5 within 0.4 s: the snapshot at once, then pending
        clock.ns = T0 + i * SECOND // 10
        env = envelope(i + 1, clock.ns, frame("BTCUSDT", i + 1, snapshot=i == 0))
        journal.add(RAW, 100.0 + i / 10, [env])
    journal.add(int(InputKind.PUBLISH_DUE), 101.0)
    journal.close()
    out = tmp_path / "out.jsonl"
    done = replay("--out", out, directory)
    assert done.returncode == 0, done.stderr
    books = [m for m in lines(out) if m["channel"] == "book"]
    assert [(m["u"], m["seq"]) for m in books] == [(1, 1), (5, 2)]
    assert books[1]["bids"] == [["100", "5"]]


def test_an_arbitrated_conflating_builder_replays_what_it_published(tmp_path: Path) -> None:
    """Two sources of one topic (an A/B feed) and books.max_rate: what arbitration decides (a
    u one source skipped held until the other fills it, a source's lost envelope costing a
    failover, not a resync) depends only on journaled inputs, so the replay publishes
    exactly what the live hub published."""
    directory = tmp_path / "journal"
    clock = Clock()
    hub_config = {**HUB, "max_rate": 2.0}
    journal = Journal(
        JournalConfig(enabled=True, dir=str(directory)), hub_config, {}, clock_ns=clock
    )
    journal.open()
    journal.start()
    live = Hub(**hub_config, clock_ns=clock)
    published: list[tuple[bytes, bytes]] = []
    category = wire.category_code("linear")
    seqs = {1: 0, 2: 0}

    def raw(conn_id: int, kind: wire.EnvelopeKind, payload: bytes, *, lose: bool = False) -> None:
        if kind is wire.EnvelopeKind.DATA:
            seqs[conn_id] += 1
        if lose:
            return  # lost before the builder: the source's next envelope shows the hole
        env = oracles.encode_raw(
            kind,
            ingestor=b"ing",
            category=category,
            conn_id=conn_id,
            seq=seqs[conn_id],
            recv_ns=clock.ns,
            frame=payload,
        )
        journal.add(RAW, now, [env])
        live.on_raw(env, now)

    now = 100.0
    raw(1, wire.EnvelopeKind.CONN_UP, b"linear#0")
    raw(2, wire.EnvelopeKind.CONN_UP, b"linear#1")
    for step in range(1, 21):  # source 1 delivers u = step, source 2 one step behind
        now = 100.0 + step / 10
        clock.ns = T0 + step * SECOND // 10
        if step != 5:  # source 1 skips u = 5: its u = 6 is held until source 2 brings 5
            raw(1, wire.EnvelopeKind.DATA, frame("BTCUSDT", step, snapshot=step == 1))
        if step > 1:  # source 2 loses its u = 11 on the way: a hole in its sequence
            u = step - 1
            raw(2, wire.EnvelopeKind.DATA, frame("BTCUSDT", u, snapshot=u == 1), lose=u == 11)
        journal.add(int(InputKind.PUBLISH_DUE), now)
        live.publish_due(now)
        journal.add(TICK, now)
        live.tick(now)
        published.extend(live.outbox)
        live.outbox.clear()
    journal.close()
    assert live.stats.held == 1 and live.stats.filled == 1 and live.stats.resyncs == 0
    assert live.stats.seq_holes == 1 and live.stats.failovers == 1

    out = tmp_path / "out.jsonl"
    done = replay("--out", out, directory)
    assert done.returncode == 0, done.stderr
    keys = ("topic", "channel", "seq", "u", "bids", "asks", "state", "recv_ns")

    def view(msg: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(msg.get(k) for k in keys)

    expected = [
        view({**orjson.loads(payload), "topic": topic.decode()}) for topic, payload in published
    ]
    got = [view(m) for m in lines(out)]
    assert got == expected
    books = [m for m in lines(out) if m["channel"] == "book"]
    assert books[0]["u"] == 1 and 3 <= len(books) < 19  # conflated: not every u published
    assert [m["seq"] for m in books] == list(range(1, len(books) + 1))
    assert all(a["u"] < b["u"] for a, b in itertools.pairwise(books))


def test_a_fused_bbo_hub_replays_from_the_journaled_config(tmp_path: Path) -> None:
    """Depth 1 beside depth 50 (issue 15): the builder journals ``fused`` as a JSON list of
    [category, symbol]; replay builds the same hub from it and publishes the same bbo."""
    directory = tmp_path / "journal"
    clock = Clock()
    hub_config = {**HUB, "fused": [["linear", "BTCUSDT"]]}

    def book(depth: int, u: int, seq: int, bid_size: str, *, snapshot: bool) -> bytes:
        data = {"s": "BTCUSDT", "b": [["100", bid_size]], "a": [["101", "1"]], "u": u, "seq": seq}
        return orjson.dumps(
            {
                "topic": f"orderbook.{depth}.BTCUSDT",
                "type": "snapshot" if snapshot else "delta",
                "ts": 1000 + seq,
                "cts": 999 + seq,
                "data": data,
            }
        )

    frames = [
        book(50, 1, 10, "1", snapshot=True),  # bbo from depth 50 (seq 10)
        book(1, 1, 20, "2", snapshot=True),  # newer: bbo from depth 1 (seq 20)
        book(50, 2, 15, "3", snapshot=False),  # book published; its older top is not
    ]
    envelopes = [envelope(i + 1, T0 + i, payload) for i, payload in enumerate(frames)]
    journal = Journal(
        JournalConfig(enabled=True, dir=str(directory)), hub_config, {}, clock_ns=clock
    )
    journal.open()
    journal.start()
    journal.add(RAW, 100.0, envelopes)
    journal.close()
    (segment,), _ = find_segments([directory])
    assert segment.header.hub["fused"] == [["linear", "BTCUSDT"]]

    out = tmp_path / "out.jsonl"
    done = replay("--out", out, directory)
    assert done.returncode == 0, done.stderr
    bbo = [(m["depth"], m["bybit_seq"], m["bid_size"]) for m in lines(out) if m["channel"] == "bbo"]
    assert bbo == [(50, 10, "1"), (1, 20, "2")]
    books = [m["bids"] for m in lines(out) if m["channel"] == "book"]
    assert books == [[["100", "1"]], [["100", "3"]]]

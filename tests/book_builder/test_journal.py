"""The journal writer with real files: timing, rotation and retention by size, holes, failures."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from mdgw.book_builder.journal import Journal, JournalStartError, journal_or_exit
from mdgw.core import wire
from mdgw.core.journal_format import InputKind, Record
from mdgw.replay.reader import SegmentReader, find_segments
from mdgw.runtime.settings import JournalConfig
from mdgw.testing import oracles

HUB = {
    "publish_depth": 25,
    "resync_timeout": 5.0,
    "resync_min_interval": 1.0,
    "ingestor_timeout": 3.0,
    "stale_after": 60.0,
}
RAW = int(InputKind.RAW)


def config(tmp_path: Path, **keys: object) -> JournalConfig:
    return JournalConfig(enabled=True, dir=str(tmp_path / "journal"), **keys)  # type: ignore[arg-type]


def read_all(directory: Path) -> tuple[list[Record], list[SegmentReader]]:
    segments, broken = find_segments([directory])
    assert not broken
    records: list[Record] = []
    readers = []
    for segment in segments:
        reader = SegmentReader(segment)
        records.extend(reader)
        readers.append(reader)
    return records, readers


@pytest.fixture
def journals() -> Iterator[list[Journal]]:
    opened: list[Journal] = []
    yield opened
    for journal in opened:
        journal.close()


def test_records_are_on_disk_within_flush_interval_and_closed_cleanly(
    tmp_path: Path, journals: list[Journal]
) -> None:
    journal = Journal(config(tmp_path, flush_interval=0.5), HUB, {})
    journal.open()
    journals.append(journal)
    journal.start()
    handed = time.monotonic()
    journal.add(RAW, handed, [b"one", b"two"])
    journal.add(int(InputKind.TICK), handed)
    journal.hand_over()
    deadline = handed + 10.0
    while True:
        segments, _ = find_segments([tmp_path / "journal"])
        got = [r for r in SegmentReader(segments[0])]
        if got:
            break
        assert time.monotonic() < deadline, "nothing written"
        time.sleep(0.02)
    took = time.monotonic() - handed
    print(f"on disk after {took * 1000:.0f} ms (flush_interval 500 ms)")
    assert took < 0.5 + 1.0  # generous: a shared machine
    assert [(r.kind, r.now, r.items) for r in got] == [
        (RAW, handed, [b"one", b"two"]),
        (int(InputKind.TICK), handed, []),
    ]
    journal.close()
    records, readers = read_all(tmp_path / "journal")
    assert records[-1].kind == InputKind.END
    assert readers[0].tear is None and readers[0].closed_cleanly
    header = readers[0].segment.header
    assert header.hub == HUB and header.index == 0 and header.session == journal.session


def test_segments_rotate_by_size_and_the_oldest_go_past_retain_gb(
    tmp_path: Path, journals: list[Journal]
) -> None:
    mib = 1024 * 1024
    # 1 MiB segments, 3 MiB kept; random bytes do not compress.
    journal = Journal(config(tmp_path, segment_mb=1, retain_gb=3 / 1024), HUB, {})
    journal.open()
    journals.append(journal)
    journal.start()
    payloads = [os.urandom(64 * 1024) for _ in range(128)]  # 8 MiB
    for n, payload in enumerate(payloads):
        journal.add(RAW, float(n), [payload])
        if n % 8 == 7:
            journal.hand_over()
    journal.close(timeout=30)
    assert journal.error is None
    files = sorted((tmp_path / "journal").glob("*.mdj"))
    sizes = [p.stat().st_size for p in files]
    print(f"segments kept {sizes}; stats {journal.stats.as_dict()}")
    assert journal.stats.segments >= 8
    assert journal.stats.segments_deleted == journal.stats.segments - len(files)
    assert sum(sizes[:-1]) <= 3 * mib  # what is left besides the newest fits in retain_gb
    assert all(size >= mib for size in sizes[:-1])  # rotated only past segment_mb
    records, readers = read_all(tmp_path / "journal")
    indexes = [r.segment.header.index for r in readers]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    assert all(r.closed_cleanly for r in readers)
    raw = [r for r in records if r.kind == RAW]
    # The newest records, contiguous, up to the last one.
    assert [r.items[0] for r in raw] == payloads[len(payloads) - len(raw) :]


def test_a_full_queue_leaves_a_hole_that_is_written_in_its_place(
    tmp_path: Path, journals: list[Journal]
) -> None:
    journal = Journal(config(tmp_path), HUB, {}, queue_max_batches=1)
    journal.open()
    journals.append(journal)
    journal.add(RAW, 1.0, [b"a"])
    journal.hand_over()  # queued (the writer is not running yet)
    journal.add(RAW, 2.0, [b"b", b"c"])
    journal.add(int(InputKind.TICK), 2.5)
    journal.hand_over()  # the queue is full: a hole
    assert journal.stats.holes == 1
    assert (journal.stats.records_lost, journal.stats.envelopes_lost) == (2, 2)
    journal.start()
    journal.add(RAW, 3.0, [b"d"])
    deadline = time.monotonic() + 10
    while True:
        journal.hand_over()
        if not journal.pending and journal.stats.records == 3:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    journal.close()
    records, _ = read_all(tmp_path / "journal")
    kinds = [r.kind for r in records]
    assert kinds == [RAW, InputKind.HOLE, RAW, InputKind.END]
    assert records[1].now == 2.5  # the last lost input's now
    assert b'"envelopes":2' in records[1].items[0] and b'"records":2' in records[1].items[0]


def test_a_write_failure_stops_the_journal_and_nothing_else(
    tmp_path: Path, journals: list[Journal]
) -> None:
    journal = Journal(config(tmp_path, flush_interval=0.2), HUB, {})
    journal.open()
    journals.append(journal)
    # The disk fills up: /dev/full fails every write with ENOSPC.
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)
    journal.start()
    journal.add(RAW, time.monotonic(), [b"x"])
    journal.hand_over()
    deadline = time.monotonic() + 10
    while journal.error is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "No space left on device" in journal.error
    assert not journal.active and journal.stats.failed == 1 and journal.stats.errors == 1
    journal.add(RAW, time.monotonic(), [b"y"])  # the data path goes on, unrecorded
    assert journal.pending == []


def test_a_directory_that_cannot_be_used_is_an_exit_78_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = JournalConfig(enabled=True, dir=str(blocker / "journal"))
    with pytest.raises(JournalStartError, match="cannot create it"):
        Journal(bad, HUB, {}).open()
    with pytest.raises(SystemExit) as caught:
        journal_or_exit(bad, HUB)
    assert caught.value.code == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("journal error: journal.dir")

    huge = JournalConfig(enabled=True, dir=str(tmp_path / "j"), segment_mb=65536)
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    if free < 65536 * 1024 * 1024:
        with pytest.raises(JournalStartError, match="less than one segment"):
            Journal(huge, HUB, {}).open()
    assert journal_or_exit(JournalConfig(enabled=False), HUB) is None


def test_a_new_journal_never_appends_to_an_old_segment(tmp_path: Path) -> None:
    first = Journal(config(tmp_path), HUB, {})
    first.open()
    first.start()
    first.add(RAW, 1.0, [b"a"])
    first.close()
    (old,) = (tmp_path / "journal").glob("*.mdj")
    # A torn tail: the last bytes of the file never made it.
    data = old.read_bytes()
    old.write_bytes(data[:-5])
    second = Journal(config(tmp_path), HUB, {})
    second.open()
    second.start()
    second.close()
    assert old.read_bytes() == data[:-5]
    segments, _ = find_segments([tmp_path / "journal"])
    assert len(segments) == 2 and segments[0].header.session != segments[1].header.session


# --- the builder process with its journal -------------------------------------------------

ROOT = Path(__file__).parents[2]


def builder_config(tmp_path: Path, journal_dir: Path) -> tuple[Path, str, str]:
    raw = f"ipc://{tmp_path}/raw.sock"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        pub = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    config = tmp_path / "builder.toml"
    config.write_text(
        f'[zmq]\nraw = "{raw}"\ncontrol = "ipc://{tmp_path}/control.sock"\n'
        f'pub = "{pub}"\nsnapshot = "ipc://{tmp_path}/snapshot.sock"\n'
        '[log]\nstats_interval = 0.5\nformat = "json"\n'
        f'[journal]\nenabled = true\ndir = "{journal_dir}"\nflush_interval = 0.2\n'
        "[metrics]\nbook_builder = 0\n"  # off (tests bind no fixed port); --metrics-port auto
    )
    return config, raw, pub


def builder_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MDGW_")}
    return {**env, "MDGW_CONFIG": str(config)}


def test_the_builder_exits_78_with_one_line_when_the_journal_dir_is_unusable(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config, _, _ = builder_config(tmp_path, blocker / "journal")
    done = subprocess.run(
        [sys.executable, "-m", "mdgw.book_builder"],
        cwd=ROOT,
        env=builder_env(config),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"journal error: journal.dir '{blocker / 'journal'}'")


def test_a_journal_that_fails_at_run_time_stops_and_the_books_go_on(tmp_path: Path) -> None:
    config, raw, pub = builder_config(tmp_path, tmp_path / "journal")
    # Files may not grow past 16 KiB (ulimit -f counts KiB): the journal's writes then fail
    # with EFBIG, as on a full disk (Python ignores SIGXFSZ).
    proc = subprocess.Popen(
        [
            "bash",
            "-c",
            f"ulimit -f 16 && exec {sys.executable} -m mdgw.book_builder --metrics-port auto",
        ],
        cwd=ROOT,
        env=builder_env(config),
        stdout=subprocess.PIPE,  # a pipe: the log is not a file the limit applies to
        stderr=subprocess.STDOUT,
    )
    log: list[dict[str, object]] = []

    def read_log() -> None:
        assert proc.stdout is not None
        with proc.stdout:  # closed at EOF, when the builder has exited
            log.extend(orjson.loads(x) for x in proc.stdout if x.strip())

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.connect(raw)
        sub = ctx.socket(zmq.SUB)
        sub.subscribe(b"book.")
        sub.connect(pub)
        seq = 0

        def send_snapshot(u: int) -> None:
            nonlocal seq
            seq += 1
            noise = os.urandom(600).hex()  # incompressible: the journal grows fast
            data = {"s": "BTCUSDT", "b": [["1", "1"]], "a": [["2", "1"]], "u": u, "seq": u}
            frame = orjson.dumps(
                {
                    "topic": "orderbook.50.BTCUSDT",
                    "type": "snapshot",
                    "ts": u,
                    "data": data,
                    "cts": u,
                    "pad": noise,
                }
            )
            push.send(
                oracles.encode_raw(
                    wire.EnvelopeKind.DATA,
                    ingestor=b"t",
                    category=1,
                    conn_id=1,
                    seq=seq,
                    recv_ns=time.time_ns(),
                    frame=frame,
                )
            )

        deadline = time.monotonic() + 30
        u = 0
        while not any(line.get("event") == "journal_failed" for line in list(log)):
            assert proc.poll() is None, "the builder exited"
            assert time.monotonic() < deadline, "the journal never failed"
            u += 1
            send_snapshot(u)
            time.sleep(0.005)
        failed = next(line for line in list(log) if line.get("event") == "journal_failed")
        assert "File too large" in str(failed["reason"])
        # The books go on: a new snapshot is published after the failure.
        while sub.poll(0):
            sub.recv_multipart()
        u += 1
        send_snapshot(u)
        assert sub.poll(10_000), "no book after the journal failed"
        _, payload = sub.recv_multipart()
        assert orjson.loads(payload)["u"] >= u - 1
        # ... and /metrics says so (issue 13: a run-time journal failure is a metric).
        listening = next(x for x in list(log) if x.get("event") == "metrics_listening")
        url = f"http://127.0.0.1:{listening['port']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples["mdgw_journal_failed"] == 1
        assert samples["mdgw_journal_errors_total"] == 1
        assert samples["mdgw_journal_records_total"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        reader.join(timeout=5)
        final = next(line for line in log if line.get("event") == "stats_final")
        journal = final["journal"]
        assert isinstance(journal, dict) and journal["failed"] == 1 and journal["errors"] == 1
        assert sum(1 for line in log if line.get("event") == "journal_failed") == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ctx.destroy(linger=0)


def test_whatever_is_handed_over_reads_back_the_same_in_order(
    tmp_path: Path, journals: list[Journal]
) -> None:
    rng = random.Random(13)
    # Small segments, so records cross chunk and segment boundaries.
    journal = Journal(config(tmp_path, segment_mb=1, flush_interval=0.2), HUB, {})
    journal.open()
    journals.append(journal)
    journal.start()
    sent: list[tuple[int, float, list[bytes]]] = []
    kinds = [RAW, RAW, RAW, int(InputKind.TICK), int(InputKind.PEER_DISCONNECTED)]
    for n in range(3000):
        kind = rng.choice(kinds)
        items = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(rng.randrange(1, 20))]
        items = items if kind == RAW else []
        journal.add(kind, n / 7, items)
        sent.append((kind, n / 7, items))
        if rng.random() < 0.05:
            journal.hand_over()
    journal.close(timeout=30)
    assert journal.error is None and journal.stats.holes == 0
    records, readers = read_all(tmp_path / "journal")
    assert len(readers) > 1
    got = [(r.kind, r.now, r.items) for r in records if r.kind != InputKind.END]
    assert got == sent

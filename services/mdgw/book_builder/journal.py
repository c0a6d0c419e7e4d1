"""book_builder's journal: every hub input, appended to zstd-compressed segment files.

The event loop only appends ``(kind, now, wall_ns, items)`` tuples to a list
(:meth:`Journal.add`, one per hub call: a whole raw batch is one record) and hands the
list to a writer thread every 100 ms (:meth:`Journal.hand_over`) through a bounded queue.
The thread encodes (:mod:`mdgw.core.journal_format`), compresses and writes one chunk at
most ``flush_interval`` after its first record arrived, rotates segments past
``segment_mb`` and deletes the oldest past ``retain_gb``.

Rules (docs/journal.md):

- the data path never waits for the disk. When the queue is full (the disk is slower than
  the feed) a hand-over is left out, counted, logged once and written as a ``HOLE``
  record in its place; the books go on;
- a write error stops the journal (``failed``), never the books; the shell logs it once
  and exports :attr:`Journal.stats`;
- a new builder run starts a new segment (and session): it never appends to a file that a
  killed process may have torn.

Only :meth:`Journal.open` raises (:class:`JournalStartError`): at start, a directory that
cannot be written or a disk without room for one segment is an environment error (78).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import shutil
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

import orjson
import zstandard

from mdgw.core.journal_format import (
    SEGMENT_SUFFIX,
    InputKind,
    SegmentHeader,
    encode_chunk_header,
    encode_record,
    encode_segment_header,
    record_head,
)
from mdgw.runtime.settings import EX_CONFIG, JournalConfig

__all__ = [
    "HAND_OVER_S",
    "Journal",
    "JournalStartError",
    "JournalStats",
    "journal_or_exit",
    "segment_name",
]

HAND_OVER_S: Final = 0.1  # the builder hands records over on every hub tick
_QUEUE_MAX_BYTES: Final = 128 * 1024 * 1024  # raw bytes waiting for the writer
_QUEUE_MAX_BATCHES: Final = 300  # 30 s of hand-overs
_CHUNK_MAX_BYTES: Final = 8 * 1024 * 1024  # uncompressed; a chunk is written past it
# Level 1: on the simulator's frames 4.7 times smaller (level 3: 4.8) for 10 % less CPU.
_ZSTD_LEVEL: Final = 1
_RAW: Final = int(InputKind.RAW)
_RECORD_OVERHEAD: Final = 32  # bytes counted per record besides its envelopes' (queue bound)

Pending = list[tuple[int, float, int, Sequence[bytes]]]


class JournalStartError(Exception):
    """The journal cannot start (directory, permissions, disk space): exit 78."""


@dataclass(slots=True)
class JournalStats:
    """Counters since start (the stats line's ``journal``; a metrics exporter reads these)."""

    records: int = 0  # handed to the writer
    envelopes: int = 0  # raw envelopes in those records
    chunks: int = 0  # written
    bytes_written: int = 0  # compressed, headers included
    raw_bytes: int = 0  # envelope bytes written (before compression)
    segments: int = 0  # opened
    segments_deleted: int = 0  # by retention
    holes: int = 0  # hand-overs left out (queue full)
    records_lost: int = 0
    envelopes_lost: int = 0
    errors: int = 0  # write/rotate failures (the first one stops the journal)
    failed: int = 0  # 1 once the journal has stopped on an error

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def segment_name(started_ns: int) -> str:
    """``20261202T141530.123456Z.mdj``: the segment's start time, UTC (names sort by time)."""
    when = dt.datetime.fromtimestamp(started_ns // 1000 / 1e6, tz=dt.UTC)
    micros = started_ns // 1000 % 1_000_000
    return when.strftime("%Y%m%dT%H%M%S") + f".{micros:06d}Z{SEGMENT_SUFFIX}"


class Journal:
    """One builder run's journal: a session of segments in ``config.dir``."""

    def __init__(
        self,
        config: JournalConfig,
        hub_config: dict[str, Any],
        extra: dict[str, Any],
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        queue_max_bytes: int = _QUEUE_MAX_BYTES,
        queue_max_batches: int = _QUEUE_MAX_BATCHES,
    ) -> None:
        self.config = config
        self.dir = Path(config.dir)
        self.hub_config = hub_config
        self.extra = extra
        self.session = uuid.uuid4().hex
        self.segment_bytes = config.segment_mb * 1024 * 1024
        self.retain_bytes = int(config.retain_gb * 1024**3)
        self.stats = JournalStats()
        self.pending: Pending = []
        self.active = False  # add() records only while True
        self.error: str | None = None  # set by the writer thread when it stops on an error
        self.error_reported = False
        self.last_hole: dict[str, Any] | None = None  # for the shell's log line
        self._clock_ns = clock_ns  # wall clock of each record (tests pass their own)
        self._queue_max_bytes = queue_max_bytes
        self._queue: queue.Queue[tuple[Pending, int, int] | None] = queue.Queue(
            maxsize=queue_max_batches
        )
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._hole: dict[str, Any] | None = None  # lost since the last good hand-over
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._index = 0
        self._size = 0
        self.current: Path | None = None

    # ------------------------------------------------------------ start / stop

    def open(self) -> None:
        """Create the directory and the session's first segment; JournalStartError if not."""
        where = f"journal.dir {str(self.dir)!r}"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalStartError(f"{where}: cannot create it: {exc.strerror or exc}") from None
        if not self.dir.is_dir():
            raise JournalStartError(f"{where} is not a directory")
        try:
            free = shutil.disk_usage(self.dir).free
        except OSError as exc:
            raise JournalStartError(f"{where}: cannot stat it: {exc.strerror or exc}") from None
        if free < self.segment_bytes:
            raise JournalStartError(
                f"{where}: only {free / 2**20:.1f} MiB free, less than one segment "
                f"(journal.segment_mb = {self.config.segment_mb})"
            )
        try:
            self._open_segment()
        except OSError as exc:
            raise JournalStartError(
                f"{where}: cannot write a segment there: {exc.strerror or exc}"
            ) from None
        self._apply_retention()
        self.active = True

    def start(self) -> None:
        """Start the writer thread (after :meth:`open`)."""
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Hand over what is pending, let the writer finish the segment, and stop."""
        if self._thread is None:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            return
        if self.active:
            self.hand_over()
        self.active = False
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)  # stop
        self._thread.join(timeout)

    # -------------------------------------------------------------- data path

    def add(self, kind: int, now: float, items: Sequence[bytes] = ()) -> None:
        """One hub input, in the order the hub took it (*now* exactly as the hub got it)."""
        if self.active:
            self.pending.append((kind, now, self._clock_ns(), items))

    def hand_over(self) -> None:
        """Give the pending records to the writer, or count them as a hole if it is behind."""
        batch = self.pending
        if not batch:
            return
        self.pending = []
        if not self.active:  # stopped on an error: what was pending is dropped
            return
        envelopes = nbytes = 0
        for kind, _now, _wall, items in batch:
            if kind == _RAW:
                envelopes += len(items)
                nbytes += sum(map(len, items))
        nbytes += _RECORD_OVERHEAD * len(batch)
        stats = self.stats
        with self._lock:
            room = self._queued_bytes + nbytes <= self._queue_max_bytes
            if room:
                self._queued_bytes += nbytes
        if room:
            hole = self._hole
            if hole is not None:
                note = orjson.dumps(hole)
                batch.insert(0, (int(InputKind.HOLE), hole["now"], hole["to_ns"], [note]))
            try:
                self._queue.put_nowait((batch, nbytes, envelopes))
            except queue.Full:
                if hole is not None:
                    batch.pop(0)
                with self._lock:
                    self._queued_bytes -= nbytes
            else:
                stats.records += len(batch)
                stats.envelopes += envelopes
                self._hole = None
                return
        # The writer is behind: leave these out, and say so in the journal.
        stats.records_lost += len(batch)
        stats.envelopes_lost += envelopes
        first, last = batch[0], batch[-1]
        if self._hole is None:
            stats.holes += 1
            self._hole = {
                "from_ns": first[2],
                "to_ns": last[2],
                "records": 0,
                "envelopes": 0,
                "now": last[1],
            }
            self.last_hole = self._hole
        hole = self._hole
        hole["to_ns"] = last[2]
        hole["now"] = last[1]
        hole["records"] += len(batch)
        hole["envelopes"] += envelopes

    # ---------------------------------------------------------- writer thread

    def _run(self) -> None:
        compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True)
        parts: list[bytes] = []
        size = records = 0
        first_ns = last_ns = 0
        deadline = 0.0
        get = self._queue.get
        stopping = False
        while not stopping:
            timeout = None if not parts else max(0.0, deadline - time.monotonic())
            item: tuple[Pending, int, int] | bool | None
            try:
                item = get(timeout=timeout)
            except queue.Empty:
                item = False  # the deadline of the buffered records
            if item is None:
                stopping = True
            elif item is not False:
                assert not isinstance(item, bool)
                batch, nbytes, _ = item
                with self._lock:
                    self._queued_bytes -= nbytes
                if self.error is not None:
                    continue  # failed: only drain the queue
                if not parts:
                    # Written within flush_interval of the builder taking the first record
                    # in, hand-over delay included.
                    deadline = batch[0][1] + self.config.flush_interval - 1.5 * HAND_OVER_S
                    first_ns = batch[0][2]
                last_ns = batch[-1][2]
                append, extend = parts.append, parts.extend
                for kind, now, wall_ns, items in batch:
                    append(record_head(kind, now, wall_ns, items))
                    if items:
                        extend(items)
                records += len(batch)
                size += nbytes
                self.stats.raw_bytes += nbytes - _RECORD_OVERHEAD * len(batch)
            if self.error is not None:
                parts.clear()
                continue
            if parts and (stopping or size >= _CHUNK_MAX_BYTES or time.monotonic() >= deadline):
                try:
                    self._write_chunk(compressor, parts, records, first_ns, last_ns)
                    if self._size >= self.segment_bytes and not stopping:
                        self._rotate(compressor)
                except OSError as exc:
                    self._fail(f"cannot write {self.current}: {exc.strerror or exc}")
                parts.clear()
                size = records = 0
        if self.error is None:
            try:
                self._end_segment(compressor, None)
            except OSError as exc:
                self._fail(f"cannot finish {self.current}: {exc.strerror or exc}")

    def _fail(self, reason: str) -> None:
        self.stats.errors += 1
        self.stats.failed = 1
        self.error = reason
        self.active = False
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def _write_chunk(
        self,
        compressor: zstandard.ZstdCompressor,
        parts: list[bytes],
        records: int,
        first_ns: int,
        last_ns: int,
    ) -> None:
        data = compressor.compress(b"".join(parts))
        header = encode_chunk_header(len(data), zlib.crc32(data), records, first_ns, last_ns)
        self._write(header + data)
        self.stats.chunks += 1

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        self.stats.bytes_written += len(data)

    def _open_segment(self) -> None:
        started = time.time_ns()
        path = self.dir / segment_name(started)
        while path.exists():  # two segments in one microsecond
            started += 1000
            path = self.dir / segment_name(started)
        header = SegmentHeader(
            session=self.session,
            index=self._index,
            started_ns=started,
            hub=self.hub_config,
            extra=self.extra,
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._fd, self._size, self.current = fd, 0, path
        self.stats.segments += 1
        self._index += 1
        try:
            self._write(encode_segment_header(header))
        except OSError:
            os.close(fd)
            self._fd = -1
            raise

    def _end_segment(self, compressor: zstandard.ZstdCompressor, next_name: str | None) -> None:
        """The END record (a clean close: the reader knows nothing was torn off), fsync."""
        now_ns = time.time_ns()
        note = orjson.dumps({"next": next_name})
        record = encode_record(int(InputKind.END), time.monotonic(), now_ns, [note])
        self._write_chunk(compressor, [record], 1, now_ns, now_ns)
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1

    def _rotate(self, compressor: zstandard.ZstdCompressor) -> None:
        next_name = segment_name(time.time_ns())
        self._end_segment(compressor, next_name)
        self._open_segment()
        self._apply_retention()

    def _apply_retention(self) -> None:
        """Delete the oldest segments while the directory holds more than retain_gb."""
        try:
            segments = sorted(p for p in self.dir.iterdir() if p.name.endswith(SEGMENT_SUFFIX))
            sizes = {p: p.stat().st_size for p in segments}
        except OSError:
            return  # a later rotation tries again
        total = sum(sizes.values())
        for path in segments:
            if total <= self.retain_bytes:
                break
            if path == self.current:
                continue
            try:
                path.unlink()
            except OSError:
                continue
            total -= sizes[path]
            self.stats.segments_deleted += 1


def journal_or_exit(config: JournalConfig, hub_config: dict[str, Any]) -> Journal | None:
    """The opened journal (None when ``journal.enabled`` is off); exit 78 if it cannot start."""
    if not config.enabled:
        return None
    journal = Journal(config, hub_config, {"writer": "mdgw.book_builder", "pid": os.getpid()})
    try:
        journal.open()
    except JournalStartError as exc:
        print(f"journal error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EX_CONFIG) from None
    return journal

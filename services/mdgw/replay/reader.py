"""Reading journal segments from disk: headers, chunks, records, and where a file tears.

A segment is read chunk by chunk. Whatever ends the readable part early (a chunk header
or body cut short, a CRC that does not match, zstd refusing the frame, records that do not
parse) is a *tear*: :attr:`SegmentReader.tear` says where and after how many records, and
everything before it has been yielded. A kill -9 of the builder tears at most the last
chunk it was writing; a segment that ends cleanly between chunks but without the writer's
closing ``END`` record is reported as torn there too (nothing says what came after).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from mdgw.core.journal_format import (
    CHUNK_HEADER,
    MAGIC,
    SEGMENT_SUFFIX,
    InputKind,
    JournalFormatError,
    Record,
    SegmentHeader,
    decode_chunk_header,
    decode_records,
    decode_segment_header,
)

__all__ = ["JournalReadError", "Segment", "SegmentReader", "Tear", "find_segments"]

_HEADER_READ = 64 * 1024  # enough for any header this mdgw writes


@dataclass(frozen=True)
class Tear:
    path: Path
    offset: int  # byte offset in the file where the readable part ends
    records: int  # records read from the file before it
    last_ns: int | None  # wall clock of the last record read
    reason: str


@dataclass(frozen=True)
class Segment:
    path: Path
    header: SegmentHeader
    size: int


class JournalReadError(Exception):
    """A path that is not a readable journal segment (or holds none)."""


def find_segments(paths: Iterable[str | Path]) -> tuple[list[Segment], list[Tear]]:
    """The segments of *paths* (directories: every ``*.mdj`` in them), in time order.

    Files whose header cannot be read are returned as tears (0 records): a builder killed
    while it created the file. A path that does not exist raises JournalReadError.
    """
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.name.endswith(SEGMENT_SUFFIX)))
        elif path.is_file():
            files.append(path)
        else:
            raise JournalReadError(f"{path}: no such file or directory")
    segments: list[Segment] = []
    broken: list[Tear] = []
    seen: set[Path] = set()
    for path in files:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            with path.open("rb") as f:
                head = f.read(_HEADER_READ)
            header, _ = decode_segment_header(head)
            size = path.stat().st_size
        except JournalFormatError as exc:
            if not exc.truncated or not head.startswith(MAGIC[: len(head)]):
                raise JournalReadError(f"{path}: {exc.reason}") from None
            broken.append(Tear(path, 0, 0, None, f"segment header torn: {exc.reason}"))
            continue
        except OSError as exc:
            raise JournalReadError(f"{path}: {exc.strerror or exc}") from None
        segments.append(Segment(path, header, size))
    segments.sort(key=lambda s: (s.header.started_ns, s.header.index, s.path.name))
    return segments, broken


class SegmentReader:
    """The records of one segment, in order; :attr:`tear` once iteration stopped early."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.records = 0
        self.chunks = 0
        self.bytes_read = 0
        self.tear: Tear | None = None
        self.closed_cleanly = False  # an END record was read
        self.next_name: str | None = None
        self.last_ns: int | None = None

    def __iter__(self) -> Iterator[Record]:
        path = self.segment.path
        decompressor = zstandard.ZstdDecompressor()
        with path.open("rb") as f:
            head = f.read(_HEADER_READ)
            _, offset = decode_segment_header(head)
            f.seek(offset)
            while True:
                raw = f.read(CHUNK_HEADER.size)
                if not raw:
                    if not self.closed_cleanly:
                        self._tear(
                            offset,
                            "ends without its closing record (the builder was killed, or is "
                            "still writing it)",
                        )
                    return
                if len(raw) < CHUNK_HEADER.size:
                    self._tear(offset, f"chunk header cut short ({len(raw)} bytes)")
                    return
                try:
                    chunk = decode_chunk_header(raw)
                except JournalFormatError as exc:
                    self._tear(offset, exc.reason)
                    return
                body = f.read(chunk.length)
                if len(body) < chunk.length:
                    self._tear(
                        offset, f"chunk cut short ({len(body)} of {chunk.length} bytes written)"
                    )
                    return
                if zlib.crc32(body) != chunk.crc32:
                    self._tear(offset, "chunk CRC mismatch")
                    return
                try:
                    data = decompressor.decompress(body)
                    records = list(decode_records(data))
                except (zstandard.ZstdError, JournalFormatError) as exc:
                    self._tear(offset, f"chunk does not decode: {exc}")
                    return
                if len(records) != chunk.records:
                    self._tear(offset, f"chunk holds {len(records)} records, says {chunk.records}")
                    return
                offset += CHUNK_HEADER.size + chunk.length
                self.bytes_read = offset
                self.chunks += 1
                for record in records:
                    self.records += 1
                    self.last_ns = record.wall_ns
                    if record.kind == InputKind.END:
                        self.closed_cleanly = True
                    yield record

    def _tear(self, offset: int, reason: str) -> None:
        self.tear = Tear(self.segment.path, offset, self.records, self.last_ns, reason)

"""The journal's byte format, sans-I/O: segment headers, chunk frames and hub-input records.

The book builder journals every input of its :class:`~mdgw.core.hub.Hub`, in the order the
hub consumed them, so that ``mdgw.replay`` can feed the same inputs to a new hub and get
the same published messages back. docs/journal.md describes this format byte by byte;
keep the two in step.

A segment file is::

    segment header | chunk | chunk | ...

- Segment header: ``b"MDGWJRNL"``, format version (u16 LE), length (u32 LE) of a UTF-8
  JSON object (:func:`encode_segment_header`): the session, the segment's index in it,
  its start time and the hub's configuration.
- Chunk: a 32-byte header (:data:`CHUNK_HEADER`: ``b"CH"``, flags u16, compressed length
  u32, CRC-32 of the compressed bytes u32, record count u32, first and last record's
  wall-clock ns i64) and one complete zstd frame. The writer flushes one chunk at a time,
  so a process killed mid-write leaves at most one incomplete chunk at the end (a tear).
- The zstd frame decompresses to records, back to back: a 24-byte header
  (:data:`RECORD_HEADER`: kind u8, 3 pad bytes, item count u32, ``now`` f64, wall-clock ns
  i64), the item lengths (u32 each) and the items' bytes concatenated.

Every record is one hub entry point called with ``now`` (the monotonic seconds the
builder passed) and its items; :class:`InputKind` lists them. ``RAW`` is a batch of raw
envelopes (each ``hub.on_raw(item, now)``); the others carry no items. A new hub entry
point is a new kind here plus one line in the replay's dispatch table.

Compression and checksums are the shell's (``zstandard``, ``zlib.crc32``): this module
only lays out and parses bytes, and raises :class:`JournalFormatError` on anything else.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "CHUNK_HEADER",
    "FORMAT_VERSION",
    "MAGIC",
    "RECORD_HEADER",
    "SEGMENT_SUFFIX",
    "ChunkHeader",
    "InputKind",
    "JournalFormatError",
    "Record",
    "SegmentHeader",
    "decode_chunk_header",
    "decode_records",
    "decode_segment_header",
    "encode_chunk_header",
    "encode_record",
    "encode_segment_header",
    "record_head",
]

MAGIC: Final = b"MDGWJRNL"
FORMAT_VERSION: Final = 1
SEGMENT_SUFFIX: Final = ".mdj"

_PREAMBLE = struct.Struct("<8sHI")  # magic, format version, header JSON length
_MAX_HEADER_JSON = 1 << 20

CHUNK_MAGIC: Final = b"CH"
# magic 2s, flags u16, compressed length u32, crc32 u32, records u32, first/last wall ns i64
CHUNK_HEADER: Final = struct.Struct("<2sHIIIqq")
MAX_CHUNK_BYTES: Final = 1 << 30

# kind u8, pad 3, item count u32, now f64, wall ns i64
RECORD_HEADER: Final = struct.Struct("<B3xIdq")
_LENGTH = struct.Struct("<I")


class JournalFormatError(Exception):
    """Bytes that are not a journal (or not this version of it)."""

    def __init__(self, reason: str, *, truncated: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated  # the bytes end too early (a torn write), nothing else


class InputKind(enum.IntEnum):
    """What a record holds: one call of a hub entry point (or a note of the journal's own)."""

    RAW = 1  # items: raw envelopes, each hub.on_raw(item, now), in order
    TICK = 2  # hub.tick(now)
    PEER_DISCONNECTED = 3  # hub.on_peer_disconnected(now)
    CONTROL_SUBSCRIBER = 4  # hub.on_control_subscriber(now)
    PUBLISH_DUE = 5  # hub.publish_due(now) (conflation, books.max_rate)
    HOLE = 100  # inputs left out of the journal (disk too slow); item: JSON of what was lost
    END = 101  # the segment was closed by the writer; item: JSON, {"next": name or null}


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    session: str  # one per builder run: segments of a session continue one hub
    index: int  # 0, 1, 2... within the session
    started_ns: int  # wall clock, ns; also the file name
    hub: dict[str, Any]  # the Hub's constructor arguments (publish depth, timeouts)
    extra: dict[str, Any]  # anything else the writer noted (mdgw version, host)


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    flags: int
    length: int  # compressed bytes that follow
    crc32: int  # zlib.crc32 of those bytes
    records: int
    first_ns: int  # wall clock of the first record
    last_ns: int  # and of the last


@dataclass(frozen=True, slots=True)
class Record:
    kind: int  # an InputKind value (unknown kinds are passed on, for the reader to judge)
    now: float  # the monotonic seconds the hub was given
    wall_ns: int  # wall clock when the builder took the input in
    items: list[bytes]


def encode_segment_header(header: SegmentHeader) -> bytes:
    body = orjson.dumps(
        {
            "format_version": FORMAT_VERSION,
            "session": header.session,
            "index": header.index,
            "started_ns": header.started_ns,
            "hub": header.hub,
            **header.extra,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body)) + body


def decode_segment_header(data: bytes) -> tuple[SegmentHeader, int]:
    """The header at the start of *data* and its length in bytes."""
    if len(data) < _PREAMBLE.size:
        raise JournalFormatError(
            f"{len(data)} bytes: shorter than a segment header", truncated=True
        )
    magic, version, length = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise JournalFormatError(f"not an mdgw journal segment (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise JournalFormatError(
            f"journal format version {version}; this mdgw reads version {FORMAT_VERSION}"
        )
    if length > _MAX_HEADER_JSON:
        raise JournalFormatError(f"segment header of {length} bytes is implausible")
    end = _PREAMBLE.size + length
    if len(data) < end:
        raise JournalFormatError("segment header is cut short", truncated=True)
    try:
        body = orjson.loads(data[_PREAMBLE.size : end])
        body.pop("format_version", None)  # the preamble's copy is the one that counts
        header = SegmentHeader(
            session=str(body.pop("session")),
            index=int(body.pop("index")),
            started_ns=int(body.pop("started_ns")),
            hub=dict(body.pop("hub")),
            extra=body,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise JournalFormatError(f"bad segment header: {exc!r}") from None
    return header, end


def encode_chunk_header(
    length: int, crc32: int, records: int, first_ns: int, last_ns: int
) -> bytes:
    return CHUNK_HEADER.pack(CHUNK_MAGIC, 0, length, crc32, records, first_ns, last_ns)


def decode_chunk_header(data: bytes | memoryview, offset: int = 0) -> ChunkHeader:
    """The chunk header at *offset*; the caller checks there are CHUNK_HEADER.size bytes."""
    magic, flags, length, crc, records, first_ns, last_ns = CHUNK_HEADER.unpack_from(data, offset)
    if magic != CHUNK_MAGIC:
        raise JournalFormatError(f"no chunk at offset {offset} (magic {bytes(magic)!r})")
    if length > MAX_CHUNK_BYTES:
        raise JournalFormatError(f"chunk at offset {offset} claims {length} bytes")
    return ChunkHeader(flags, length, crc, records, first_ns, last_ns)


def record_head(kind: int, now: float, wall_ns: int, items: Sequence[bytes] = ()) -> bytes:
    """A record's header and item lengths: the record is this followed by the items' bytes.

    The writer extends its chunk's list of parts with this and the items themselves and
    joins the chunk once, rather than copying each record into a bytes of its own.
    """
    count = len(items)
    if not count:
        return RECORD_HEADER.pack(kind, 0, now, wall_ns)
    try:
        lengths = struct.pack(f"<{count}I", *map(len, items))
    except struct.error:
        raise JournalFormatError("an item of 4 GiB or more cannot be journaled") from None
    return RECORD_HEADER.pack(kind, count, now, wall_ns) + lengths


def encode_record(kind: int, now: float, wall_ns: int, items: Sequence[bytes] = ()) -> bytes:
    """One record, whole (:func:`record_head` plus the items)."""
    return b"".join((record_head(kind, now, wall_ns, items), *items))


def decode_records(data: bytes) -> Iterator[Record]:
    """The records of one decompressed chunk, in order; JournalFormatError on bad bytes."""
    offset, end = 0, len(data)
    header_size = RECORD_HEADER.size
    while offset < end:
        if end - offset < header_size:
            raise JournalFormatError(f"record header cut short at offset {offset}")
        kind, count, now, wall_ns = RECORD_HEADER.unpack_from(data, offset)
        offset += header_size
        if count:
            lengths_end = offset + 4 * count
            if lengths_end > end:
                raise JournalFormatError(f"record item lengths cut short at offset {offset}")
            lengths = struct.unpack_from(f"<{count}I", data, offset)
            offset = lengths_end
            if offset + sum(lengths) > end:
                raise JournalFormatError(f"record items cut short at offset {offset}")
            items: list[bytes] = []
            append = items.append
            for length in lengths:
                nxt = offset + length
                append(data[offset:nxt])
                offset = nxt
        else:
            items = []
        yield Record(kind, now, wall_ns, items)

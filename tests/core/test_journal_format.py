"""The journal's byte format: round trips, and bad or cut bytes raise JournalFormatError only."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdgw.core.journal_format import (
    CHUNK_HEADER,
    FORMAT_VERSION,
    MAGIC,
    RECORD_HEADER,
    InputKind,
    JournalFormatError,
    Record,
    SegmentHeader,
    decode_chunk_header,
    decode_records,
    decode_segment_header,
    encode_chunk_header,
    encode_record,
    encode_segment_header,
)

HUB = {
    "publish_depth": 25,
    "resync_timeout": 5.0,
    "resync_min_interval": 1.0,
    "ingestor_timeout": 3.0,
    "stale_after": 60.0,
}

records = st.lists(
    st.builds(
        Record,
        kind=st.sampled_from([int(k) for k in InputKind]),
        now=st.floats(allow_nan=False, allow_infinity=False),
        wall_ns=st.integers(min_value=-(2**63), max_value=2**63 - 1),
        items=st.lists(st.binary(max_size=64), max_size=5),
    ),
    max_size=8,
)


@given(records)
def test_records_round_trip(rs: list[Record]) -> None:
    data = b"".join(encode_record(r.kind, r.now, r.wall_ns, r.items) for r in rs)

    assert list(decode_records(data)) == rs


@given(records, st.data())
def test_cut_records_raise_format_errors_only(rs: list[Record], data: st.DataObject) -> None:
    blob = b"".join(encode_record(r.kind, r.now, r.wall_ns, r.items) for r in rs)
    if not blob:
        return
    cut = data.draw(st.integers(min_value=1, max_value=len(blob)))
    got: list[Record] = []
    try:
        got.extend(decode_records(blob[:-cut]))
    except JournalFormatError:
        pass
    assert got == rs[: len(got)]  # never a wrong record, at most fewer


def test_record_layout_is_the_documented_one() -> None:
    data = encode_record(InputKind.RAW, 1.5, 7, [b"ab", b"c"])

    assert data[: RECORD_HEADER.size] == struct.pack("<B3xIdq", 1, 2, 1.5, 7)
    assert data[RECORD_HEADER.size :] == struct.pack("<2I", 2, 1) + b"abc"
    assert encode_record(InputKind.TICK, 2.0, 9) == struct.pack("<B3xIdq", 2, 0, 2.0, 9)


def test_segment_header_round_trips_and_is_checked() -> None:
    header = SegmentHeader("s1", 3, 123, HUB, {"writer": "test"})
    data = encode_segment_header(header) + b"rest"

    decoded, end = decode_segment_header(data)
    assert decoded == header
    assert data[end:] == b"rest"
    assert data[:8] == MAGIC
    assert struct.unpack_from("<H", data, 8) == (FORMAT_VERSION,)

    with pytest.raises(JournalFormatError, match="not an mdgw journal"):
        decode_segment_header(b"NOTMAGIC" + data[8:])
    with pytest.raises(JournalFormatError, match="format version 9"):
        decode_segment_header(MAGIC + struct.pack("<H", 9) + data[10:])
    for cut in (0, 5, 14, len(data) - 10):
        with pytest.raises(JournalFormatError) as caught:
            decode_segment_header(data[:cut])
        assert caught.value.truncated
    bad_json = MAGIC + struct.pack("<HI", FORMAT_VERSION, 3) + b"{x}"
    with pytest.raises(JournalFormatError, match="bad segment header"):
        decode_segment_header(bad_json)


def test_chunk_header_round_trips_and_is_checked() -> None:
    data = encode_chunk_header(100, 0xDEADBEEF, 4, 10, 20)

    assert len(data) == CHUNK_HEADER.size == 32
    chunk = decode_chunk_header(data)
    assert (chunk.length, chunk.crc32, chunk.records, chunk.first_ns, chunk.last_ns) == (
        100,
        0xDEADBEEF,
        4,
        10,
        20,
    )
    with pytest.raises(JournalFormatError, match="no chunk"):
        decode_chunk_header(b"XX" + data[2:])

"""mdgw.core.wire.envelope: the raw envelope, against the encode_raw oracle."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.errors import WireError
from mdgw.core.wire import (
    HEADER_SIZE,
    Envelope,
    EnvelopeKind,
    RawEncoder,
    category_code,
    decode_envelope,
    decode_raw,
)
from mdgw.testing.oracles import encode_raw

U32 = 2**32 - 1
U64 = 2**64 - 1

U32 = 2**32 - 1
U64 = 2**64 - 1

ingestor_ids = st.text(min_size=1, max_size=60).filter(lambda s: 1 <= len(s.encode()) <= 255)


# --- raw envelope ----------------------------------------------------------------------------


def test_header_layout_is_24_bytes_little_endian() -> None:
    msg = encode_raw(
        EnvelopeKind.CONN_DOWN,
        ingestor=b"ing",
        category=category_code("inverse"),
        conn_id=0x01020304,
        seq=0x05,
        recv_ns=0x06,
        frame=b"{}",
    )
    assert HEADER_SIZE == 24
    assert msg[:4] == bytes([1, 2, 2, 3])  # version, kind, category, id_len
    assert msg[4:8] == bytes([4, 3, 2, 1])  # conn_id u32 LE
    assert msg[8:16] == (5).to_bytes(8, "little")
    assert msg[16:24] == (6).to_bytes(8, "little")
    assert msg[24:] == b"ing{}"


header_fields = st.fixed_dictionaries(
    {
        "ingestor": ingestor_ids,
        "category": st.sampled_from(CATEGORIES),
        "conn_id": st.integers(0, U32),
        "seq": st.integers(0, U64),
        "recv_ns": st.integers(0, U64),
        "frame": st.binary(max_size=2000),
    }
)


@given(kind=st.sampled_from(list(EnvelopeKind)), f=header_fields)
def test_raw_round_trip(kind: EnvelopeKind, f: dict[str, Any]) -> None:
    msg = encode_raw(
        kind,
        ingestor=f["ingestor"].encode(),
        category=category_code(f["category"]),
        conn_id=f["conn_id"],
        seq=f["seq"],
        recv_ns=f["recv_ns"],
        frame=f["frame"],
    )
    expected = (kind, f["ingestor"], f["category"], f["conn_id"], f["seq"], f["recv_ns"])
    assert decode_raw(msg) == (*expected, f["frame"])
    assert decode_envelope(msg) == Envelope(*expected, f["frame"])
    assert type(decode_envelope(msg).kind) is EnvelopeKind


@given(f=header_fields)
def test_raw_encoder_matches_encode_raw(f: dict[str, Any]) -> None:
    enc = RawEncoder(f["ingestor"], f["category"])
    conn_id, seq, recv_ns, frame = f["conn_id"], f["seq"], f["recv_ns"], f["frame"]
    common = {"ingestor": f["ingestor"].encode(), "category": category_code(f["category"])}
    assert enc.data(conn_id, seq, recv_ns, frame) == encode_raw(
        EnvelopeKind.DATA, conn_id=conn_id, seq=seq, recv_ns=recv_ns, frame=frame, **common
    )
    assert enc.conn_up(conn_id, recv_ns) == encode_raw(
        EnvelopeKind.CONN_UP, conn_id=conn_id, seq=0, recv_ns=recv_ns, **common
    )
    assert enc.conn_down(conn_id, seq, recv_ns) == encode_raw(
        EnvelopeKind.CONN_DOWN, conn_id=conn_id, seq=seq, recv_ns=recv_ns, **common
    )
    assert enc.heartbeat(recv_ns) == encode_raw(
        EnvelopeKind.HEARTBEAT, conn_id=0, seq=0, recv_ns=recv_ns, **common
    )


@given(st.binary(max_size=200))
def test_decode_raw_random_bytes_raises_only_wire_error(data: bytes) -> None:
    try:
        decode_raw(data)
    except WireError:
        pass


@given(st.binary(min_size=HEADER_SIZE - 4, max_size=300))
def test_decode_raw_fuzzed_valid_prefix_raises_only_wire_error(tail: bytes) -> None:
    # Start with a plausible version byte so the fuzzer reaches the deeper checks.
    try:
        decode_raw(b"\x01" + tail)
    except WireError:
        pass


def _header(
    version: int = 1, kind: int = 0, category: int = 1, id_len: int = 3, conn: int = 1
) -> bytes:
    return struct.pack("<BBBBIQQ", version, kind, category, id_len, conn, 1, 2)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (b"", "shorter"),
        (_header()[:-1], "shorter"),
        (_header(version=2) + b"ing", "version"),
        (_header(kind=4) + b"ing", "kind"),
        (_header(category=4) + b"ing", "category"),
        (_header(id_len=0), "empty ingestor"),
        (_header(id_len=10) + b"ing", "truncated"),
        (_header() + b"\xff\xfe\xfd", "UTF-8"),
    ],
)
def test_decode_raw_rejects(msg: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode_raw(msg)


def test_decode_raw_ingestor_ids_cached_and_bounded() -> None:
    """The ingestor id is decoded once per id (the same str object after), a bad id is
    rejected however often it comes, and more ids than the cache holds all decode right."""
    first = decode_raw(_header() + b"ing" + b"{}")[1]
    again = decode_raw(_header(conn=2) + b"ing" + b"[]")[1]
    assert first == "ing"
    assert again is first
    for _ in range(2):
        with pytest.raises(WireError, match="UTF-8"):
            decode_raw(_header() + b"\xff\xfe\xfd")
    for i in range(600):
        name = f"i{i}"
        assert decode_raw(_header(id_len=len(name)) + name.encode() + b"x")[1:2] == (name,)
    assert decode_raw(_header() + b"ing")[1] == "ing"
    assert decode_raw(_header(id_len=2) + "é".encode())[1] == "é"


def test_decode_raw_returns_plain_ints_comparable_with_kinds() -> None:
    msg = RawEncoder("a", "spot").heartbeat(5)
    kind, ingestor, category, conn_id, seq, recv_ns, frame = decode_raw(msg)
    assert kind == EnvelopeKind.HEARTBEAT
    assert (ingestor, category, conn_id, seq, recv_ns, frame) == ("a", "spot", 0, 0, 5, b"")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": 9},
        {"category": 4},
        {"ingestor": b""},
        {"ingestor": b"x" * 256},
        {"conn_id": U32 + 1},
        {"seq": U64 + 1},
        {"seq": -1},
        {"recv_ns": U64 + 1},
    ],
)
def test_encode_raw_rejects_out_of_range(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "ingestor": b"i",
        "category": 0,
        "conn_id": 1,
        "seq": 1,
        "recv_ns": 1,
    }
    args.update(kwargs)
    kind = args.pop("kind", 0)
    with pytest.raises(WireError):
        encode_raw(kind, **args)


def test_raw_encoder_rejects_bad_construction_and_fields() -> None:
    with pytest.raises(WireError):
        RawEncoder("", "spot")
    with pytest.raises(WireError):
        RawEncoder("x" * 256, "spot")
    with pytest.raises(WireError):
        RawEncoder("i", "spread")
    with pytest.raises(WireError):
        RawEncoder("i", "spot").data(1, U64 + 1, 0, b"")


def test_category_codes() -> None:
    assert [category_code(c) for c in CATEGORIES] == [0, 1, 2, 3]
    with pytest.raises(WireError):
        category_code("spread")

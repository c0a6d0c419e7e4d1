"""Oracles: plain, obviously-right implementations the production code is tested against.

The production paths are built for speed (a header packed once per ingestor, a ``book``
payload rendered from a template, Bybit frames decoded by msgspec into typed structs); these
say the same thing the slow and simple way. The tests require the two to agree, on examples
and on generated inputs.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import orjson

from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.errors import WireError
from mdgw.core.wire.envelope import ENVELOPE_VERSION, EnvelopeKind
from mdgw.core.wire.topics import EXCHANGE

__all__ = ["encode_book", "encode_raw"]

# The envelope header, spelled out again on purpose (see mdgw.core.wire.envelope).
_HEADER = struct.Struct("<BBBBIQQ")


def encode_raw(
    kind: int,
    *,
    ingestor: bytes,
    category: int,
    conn_id: int,
    seq: int,
    recv_ns: int,
    frame: bytes = b"",
) -> bytes:
    """One raw envelope, every field given: the oracle for :class:`~mdgw.core.wire.RawEncoder`,
    and the way tests and the fuzzer build envelopes field by field."""
    if not 0 <= kind <= max(EnvelopeKind):
        raise WireError(f"unknown envelope kind {kind}")
    if not 0 <= category < len(CATEGORIES):
        raise WireError(f"unknown category code {category}")
    if not ingestor:
        raise WireError("empty ingestor id")
    try:
        header = _HEADER.pack(
            ENVELOPE_VERSION, kind, category, len(ingestor), conn_id, seq, recv_ns
        )
    except struct.error as exc:
        raise WireError(f"envelope field out of range: {exc}") from None
    return header + ingestor + frame


def _to_json_array(obj: object) -> list[object]:
    # orjson serializes list and tuple natively; this catches other sequences of levels.
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes | bytearray):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def encode_book(
    category: str,
    symbol: str,
    *,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    u: int,
    ts: int,
    cts: int | None,
    depth: int,
    bids: Sequence[tuple[str, str]],
    asks: Sequence[tuple[str, str]],
) -> bytes:
    """A ``book`` payload built as a dict and encoded by orjson: the oracle for
    :class:`~mdgw.core.wire.BookTemplate`, which the builder uses instead.

    ``bids`` descending and ``asks`` ascending, ``(price, size)`` strings exactly as Bybit
    sent them. ``cts`` is null when Bybit's frame had none.
    """
    payload = {
        "channel": "book",
        "exchange": EXCHANGE,
        "category": category,
        "symbol": symbol,
        "seq": seq,
        "pub_ns": pub_ns,
        "recv_ns": recv_ns,
        "u": u,
        "ts": ts,
        "cts": cts,
        "depth": depth,
        "bids": bids,
        "asks": asks,
    }
    try:
        return orjson.dumps(payload, default=_to_json_array)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise WireError(f"cannot encode book payload: {exc}") from None

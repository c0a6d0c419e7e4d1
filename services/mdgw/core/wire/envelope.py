"""The raw envelope: how an ingestor hands a Bybit frame to the book builder (PUSH -> PULL).

ONE ZeroMQ frame: a fixed 24-byte little-endian header, the ingestor id, then the Bybit frame
bytes unchanged. One frame rather than ``[envelope, frame]`` because every extra ZeroMQ frame
costs a send and a receive call of its own, while the header costs one ``struct.pack`` plus a
concatenation (docs/performance.md has the numbers). docs/wire-format.md §1 is the
user-facing description; keep the two in step.

Decoders raise :class:`~mdgw.core.errors.WireError` and nothing else on bad input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntEnum
from typing import Final, NamedTuple

from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.errors import WireError

__all__ = [
    "ENVELOPE_VERSION",
    "HEADER_SIZE",
    "Envelope",
    "EnvelopeKind",
    "RawEncoder",
    "RawTuple",
    "category_code",
    "decode_envelope",
    "decode_raw",
]

ENVELOPE_VERSION: Final = 1

# version u8, kind u8, category u8, id_len u8, conn_id u32, seq u64, recv_ns u64 = 24 bytes,
# every field naturally aligned. The ingestor id (id_len bytes, UTF-8) and the Bybit frame follow.
# Final: the compiled build keeps these in C statics, not in the module's dict, which
# decode_raw() would otherwise look up on every envelope.
_HEADER: Final = struct.Struct("<BBBBIQQ")
HEADER_SIZE: Final = _HEADER.size
_CATEGORIES: Final[tuple[str, ...]] = CATEGORIES
_CATEGORY_COUNT: Final = len(CATEGORIES)

# The category code in the header is the index in Bybit's CATEGORIES.
_CATEGORY_CODES: dict[str, int] = {name: code for code, name in enumerate(CATEGORIES)}


class EnvelopeKind(IntEnum):
    """What a raw envelope reports. Only DATA carries a Bybit frame."""

    DATA = 0  # a Bybit frame; seq = 1, 2, 3... per connection, no holes
    CONN_UP = 1  # a websocket connection opened; seq = 0
    CONN_DOWN = 2  # a websocket connection closed; seq = the last DATA seq sent on it
    HEARTBEAT = 3  # every second from a live ingestor; conn_id = 0, seq = 0


_MAX_KIND: Final = int(max(EnvelopeKind))  # an int: comparing with a member is a call

# Ingestor ids seen, by their bytes: a builder hears a handful of ingestors, so the id of an
# envelope is a dict lookup, not a UTF-8 decode, and the str handed on is the same object
# each time (its hash computed once, for the hub's dicts keyed by it). Only ids that decoded
# are kept; emptied when full, so a stream of made-up ids cannot grow it.
_INGESTOR_IDS: Final[dict[bytes, str]] = {}
_MAX_INGESTOR_IDS: Final = 256

RawTuple = tuple[int, str, str, int, int, int, bytes]
"""What :func:`decode_raw` returns: (kind, ingestor, category, conn_id, seq, recv_ns, frame)."""

_DecodeRawC = Callable[[bytes, dict[bytes, str], tuple[str, ...]], RawTuple | None]


def _load_decode_raw_c() -> _DecodeRawC | None:
    try:
        from mdgw.core.wire._envelope import decode  # noqa: PLC0415  (optional, see below)
    except ImportError:
        return None
    return decode


# decode_raw's accept path in C (core/wire/_envelope.c): a version-1 envelope whose ingestor
# id is in _INGESTOR_IDS, decoded to decode_raw's very tuple; None for anything else, which
# the Python below then judges. Built and served with the compiled hot path (mdgw.compiled);
# absent in the pure-Python build, where decode_raw runs alone. Final, so that the compiled
# build reads it from a C static (a module global read is a dict lookup, ~260 instructions
# per envelope in callgrind), which is why it is loaded by a function and not a try/except.
_decode_raw_c: Final = _load_decode_raw_c()


class Envelope(NamedTuple):
    """A decoded raw envelope, for code that prefers names over the tuple of the hot path."""

    kind: EnvelopeKind
    ingestor: str
    category: str
    conn_id: int
    seq: int
    recv_ns: int  # wall-clock ns: frame receipt for DATA, event time for the other kinds
    frame: bytes  # the Bybit frame, unchanged; empty for the other kinds


def category_code(name: str) -> int:
    """The envelope code of a Bybit category name (``"spot"`` -> 0)."""
    try:
        return _CATEGORY_CODES[name]
    except (KeyError, TypeError):
        raise WireError(f"unknown category {name!r}; expected one of {CATEGORIES}") from None


class RawEncoder:
    """Encodes the envelopes of one ingestor and category, with the constant parts checked once.

    ``data()`` is the ingestor's per-frame hot path: one ``struct.pack`` and two concatenations.
    """

    __slots__ = ("_category", "_id", "_id_len", "category", "ingestor")

    def __init__(self, ingestor: str, category: str) -> None:
        ingestor_id = ingestor.encode()
        if not 1 <= len(ingestor_id) <= 255:
            raise WireError(f"ingestor id must be 1..255 UTF-8 bytes, got {len(ingestor_id)}")
        self.ingestor = ingestor
        self.category = category
        self._category = category_code(category)
        self._id = ingestor_id
        self._id_len = len(ingestor_id)

    def _encode(self, kind: int, conn_id: int, seq: int, recv_ns: int, frame: bytes) -> bytes:
        try:
            header = _HEADER.pack(
                ENVELOPE_VERSION, kind, self._category, self._id_len, conn_id, seq, recv_ns
            )
        except struct.error as exc:
            raise WireError(f"envelope field out of range: {exc}") from None
        return header + self._id + frame

    def data(self, conn_id: int, seq: int, recv_ns: int, frame: bytes) -> bytes:
        """A Bybit frame received on connection ``conn_id``, the ``seq``-th on it (from 1)."""
        # _encode() inlined: this runs once per Bybit frame.
        try:
            header = _HEADER.pack(
                ENVELOPE_VERSION, 0, self._category, self._id_len, conn_id, seq, recv_ns
            )
        except struct.error as exc:
            raise WireError(f"envelope field out of range: {exc}") from None
        return header + self._id + frame

    def conn_up(self, conn_id: int, now_ns: int, *, slot: str = "") -> bytes:
        """Connection ``conn_id`` opened; its DATA seq restarts at 1.

        ``slot`` names the connection slot (``"linear#0"``) in the frame part, so that the
        builder can keep per-source counters across the slot's reconnects (at most 64
        bytes are read).
        """
        return self._encode(EnvelopeKind.CONN_UP, conn_id, 0, now_ns, slot.encode()[:64])

    def conn_down(self, conn_id: int, last_seq: int, now_ns: int) -> bytes:
        """Connection ``conn_id`` closed after sending DATA seq 1..``last_seq``."""
        return self._encode(EnvelopeKind.CONN_DOWN, conn_id, last_seq, now_ns, b"")

    def heartbeat(self, now_ns: int) -> bytes:
        """This ingestor is alive (sent every second)."""
        return self._encode(EnvelopeKind.HEARTBEAT, 0, 0, now_ns, b"")


def decode_raw(msg: bytes) -> RawTuple:
    """Split a raw envelope into ``(kind, ingestor, category, conn_id, seq, recv_ns, frame)``.

    ``kind`` is a plain int (compare with :class:`EnvelopeKind` members), ``category`` the
    category name, ``frame`` the Bybit bytes unchanged (a copy of that part of ``msg``).
    Raises :class:`WireError` on anything that is not a version-1 envelope.
    """
    if _decode_raw_c is not None:
        fast = _decode_raw_c(msg, _INGESTOR_IDS, _CATEGORIES)
        if fast is not None:
            return fast
    if len(msg) < HEADER_SIZE:
        raise WireError(f"envelope of {len(msg)} bytes is shorter than its header")
    version, kind, category, id_len, conn_id, seq, recv_ns = _HEADER.unpack_from(msg)
    if version != ENVELOPE_VERSION:
        raise WireError(f"unsupported envelope version {version}")
    if kind > _MAX_KIND:
        raise WireError(f"unknown envelope kind {kind}")
    if category >= _CATEGORY_COUNT:
        raise WireError(f"unknown category code {category}")
    if id_len == 0:
        raise WireError("empty ingestor id")
    end = HEADER_SIZE + id_len
    if len(msg) < end:
        raise WireError(f"envelope truncated inside the ingestor id ({len(msg)} < {end} bytes)")
    raw_id = msg[HEADER_SIZE:end]
    ingestor = _INGESTOR_IDS.get(raw_id)
    if ingestor is None:
        try:
            ingestor = raw_id.decode()
        except UnicodeDecodeError:
            raise WireError("ingestor id is not UTF-8") from None
        if len(_INGESTOR_IDS) >= _MAX_INGESTOR_IDS:
            _INGESTOR_IDS.clear()
        _INGESTOR_IDS[raw_id] = ingestor
    return kind, ingestor, _CATEGORIES[category], conn_id, seq, recv_ns, msg[end:]


def decode_envelope(msg: bytes) -> Envelope:
    """:func:`decode_raw` with names and an :class:`EnvelopeKind` (not for the hot path)."""
    kind, ingestor, category, conn_id, seq, recv_ns, frame = decode_raw(msg)
    return Envelope(EnvelopeKind(kind), ingestor, category, conn_id, seq, recv_ns, frame)

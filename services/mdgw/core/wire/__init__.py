"""mdgw's own wire formats, one module per protocol; this package re-exports their names.

- :mod:`mdgw.core.wire.envelope`: the raw envelope (ingestor PUSH -> book_builder PULL).
- :mod:`mdgw.core.wire.topics`: published messages, their topics and payloads
  (book_builder PUB -> consumers).
- :mod:`mdgw.core.wire.framing`: control messages (builder -> ingestors) and the snapshot
  service's requests and replies.

Sans-I/O: these functions turn values into ``bytes`` / ``list[bytes]`` (what pyzmq sends) and
back. Decoders raise :class:`~mdgw.core.errors.WireError` and nothing else on bad input, so a
shell can count, log and skip one bad message. docs/wire-format.md is the user-facing
description of everything here. ``from mdgw.core import wire`` then ``wire.topic(...)`` is the
usual spelling; the names below are the same objects as in the modules.
"""

from __future__ import annotations

from mdgw.core.wire.envelope import (
    ENVELOPE_VERSION,
    HEADER_SIZE,
    Envelope,
    EnvelopeKind,
    RawEncoder,
    RawTuple,
    category_code,
    decode_envelope,
    decode_raw,
)
from mdgw.core.wire.framing import (
    END,
    ERROR,
    MAX_PREFIX_LEN,
    MAX_RESYNC_TOPIC_LEN,
    RESYNC,
    ResyncRequest,
    decode_resync,
    decode_snapshot_reply,
    decode_snapshot_request,
    encode_resync,
    encode_snapshot_error,
    encode_snapshot_reply,
    encode_snapshot_request,
    split_snapshot_request,
)
from mdgw.core.wire.topics import (
    BOOK_FIELDS,
    CHANNEL_FIELDS,
    CHANNELS,
    COMMON_FIELDS,
    EXCHANGE,
    EXCHANGE_STATUS_TOPIC,
    NOTICE_FIELDS,
    STATES,
    BboTemplate,
    BookTemplate,
    GatewayTopic,
    decode_payload,
    encode_bbo,
    encode_exchange_status,
    encode_status,
    encode_trade,
    is_topic_symbol,
    parse_gateway_topic,
    subscription,
    topic,
)

__all__ = [
    "BOOK_FIELDS",
    "CHANNELS",
    "CHANNEL_FIELDS",
    "COMMON_FIELDS",
    "END",
    "ENVELOPE_VERSION",
    "ERROR",
    "EXCHANGE",
    "EXCHANGE_STATUS_TOPIC",
    "HEADER_SIZE",
    "MAX_PREFIX_LEN",
    "MAX_RESYNC_TOPIC_LEN",
    "NOTICE_FIELDS",
    "RESYNC",
    "STATES",
    "BboTemplate",
    "BookTemplate",
    "Envelope",
    "EnvelopeKind",
    "GatewayTopic",
    "RawEncoder",
    "RawTuple",
    "ResyncRequest",
    "category_code",
    "decode_envelope",
    "decode_payload",
    "decode_raw",
    "decode_resync",
    "decode_snapshot_reply",
    "decode_snapshot_request",
    "encode_bbo",
    "encode_exchange_status",
    "encode_resync",
    "encode_snapshot_error",
    "encode_snapshot_reply",
    "encode_snapshot_request",
    "encode_status",
    "encode_trade",
    "is_topic_symbol",
    "parse_gateway_topic",
    "split_snapshot_request",
    "subscription",
    "topic",
]

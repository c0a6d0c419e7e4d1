"""Control and snapshot framing: the builder's requests to ingestors, and the snapshot service.

- Control (book_builder PUB/XPUB -> ingestors' SUB): ``[b"resync", json]``, a
  :class:`ResyncRequest`.
- Snapshot service (ROUTER): the request is one frame holding a topic prefix; the reply is
  ``[topic, payload]*`` pairs then ``[b"END", json]``, or ``[b"ERROR", json]`` for a refused
  request.

docs/wire-format.md §3 and §4 describe both; keep the two in step. Decoders raise
:class:`~mdgw.core.errors.WireError` and nothing else on bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.errors import WireError
from mdgw.core.wire.envelope import category_code
from mdgw.core.wire.topics import decode_payload, json_object, parse_gateway_topic, subscription

__all__ = [
    "END",
    "ERROR",
    "MAX_PREFIX_LEN",
    "MAX_RESYNC_TOPIC_LEN",
    "RESYNC",
    "ResyncRequest",
    "decode_resync",
    "decode_snapshot_reply",
    "decode_snapshot_request",
    "encode_resync",
    "encode_snapshot_error",
    "encode_snapshot_reply",
    "encode_snapshot_request",
    "split_snapshot_request",
]

RESYNC = b"resync"
MAX_RESYNC_TOPIC_LEN = 256


class ResyncRequest(NamedTuple):
    """Ask the ingestor owning ``topic`` to unsubscribe and resubscribe it (fresh snapshot).

    ``reconnect``: the gentle way did not bring a snapshot in time; replace the whole
    connection that carries the topic (every topic on it gets a fresh snapshot).
    ``ingestor``/``conn_id``: the one source asked to serve it (when several carry the
    topic); ``""`` means any ingestor owning the topic, ``0`` any of its connections.
    """

    category: str
    topic: str  # Bybit's topic, e.g. "orderbook.50.BTCUSDT"
    reason: str
    reconnect: bool = False
    ingestor: str = ""
    conn_id: int = 0


def _check_bybit_topic(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_RESYNC_TOPIC_LEN:
        raise WireError(f"resync topic must be 1..{MAX_RESYNC_TOPIC_LEN} characters")
    if not value.isprintable() or " " in value:
        raise WireError(f"resync topic {value!r} has spaces or control characters")
    return value


def encode_resync(
    category: str,
    bybit_topic: str,
    reason: str,
    *,
    reconnect: bool = False,
    ingestor: str = "",
    conn_id: int = 0,
) -> list[bytes]:
    """The control message ``[b"resync", {"category", "topic", "reason", "reconnect"}]``,
    plus ``"ingestor"`` (and ``"conn_id"``) when one source is asked."""
    category_code(category)
    _check_bybit_topic(bybit_topic)
    if not 0 <= conn_id <= 0xFFFFFFFF:
        raise WireError(f"conn_id {conn_id} out of range")
    body: dict[str, Any] = {
        "category": category,
        "topic": bybit_topic,
        "reason": reason,
        "reconnect": reconnect,
    }
    if ingestor:
        body["ingestor"] = ingestor
        if conn_id:
            body["conn_id"] = conn_id
    return [RESYNC, orjson.dumps(body)]


def decode_resync(frames: Sequence[bytes]) -> ResyncRequest:
    """Parse a control message; :class:`WireError` unless it is a well-formed resync."""
    if len(frames) != 2:
        raise WireError(f"control message has {len(frames)} frames, expected 2")
    if frames[0] != RESYNC:
        raise WireError(f"unknown control message {bytes(frames[0])[:32]!r}")
    body = json_object(frames[1], "resync body")
    category, bybit_topic, reason = body.get("category"), body.get("topic"), body.get("reason")
    if not isinstance(category, str) or category not in CATEGORIES:
        raise WireError(f"resync has unknown category {category!r}")
    if not isinstance(reason, str):
        raise WireError("resync reason must be a string")
    reconnect = body.get("reconnect", False)
    if type(reconnect) is not bool:
        raise WireError("resync reconnect must be a boolean")
    ingestor = body.get("ingestor", "")
    if not isinstance(ingestor, str) or len(ingestor) > 255:
        raise WireError("resync ingestor must be a string of at most 255 characters")
    conn_id = body.get("conn_id", 0)
    if type(conn_id) is not int or not 0 <= conn_id <= 0xFFFFFFFF:
        raise WireError("resync conn_id must be an integer from 0 to 2**32-1")
    return ResyncRequest(
        category, _check_bybit_topic(bybit_topic), reason, reconnect, ingestor, conn_id
    )


END = b"END"
ERROR = b"ERROR"
MAX_PREFIX_LEN = 256


def encode_snapshot_request(spec: str) -> bytes:
    """The one-frame snapshot request for a topic spec (normalized like :func:`subscription`)."""
    prefix = subscription(spec)
    if len(prefix) > MAX_PREFIX_LEN:
        raise WireError(f"snapshot prefix longer than {MAX_PREFIX_LEN} bytes")
    return prefix


def decode_snapshot_request(frame: bytes) -> bytes:
    """The topic prefix a client asked for, normalized like :func:`subscription`.

    ``b"book.inverse.BTCUSD"`` and ``b"book.inverse.BTCUSD."`` both give the terminated
    prefix, so a snapshot for one symbol never includes another that it prefixes.
    """
    if len(frame) > MAX_PREFIX_LEN:
        raise WireError(f"snapshot request of {len(frame)} bytes (max {MAX_PREFIX_LEN})")
    try:
        spec = bytes(frame).decode()
    except UnicodeDecodeError:
        raise WireError("snapshot request is not UTF-8") from None
    if not spec.isprintable():
        raise WireError(f"snapshot request {spec!r} has control characters")
    return subscription(spec)


def split_snapshot_request(frames: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    """ROUTER side: ``(routing envelope, request frame)`` from a received multipart message.

    The envelope is everything before the last frame: ``[identity, b""]`` from a REQ client,
    ``[identity]`` from a DEALER that sends the bare request. Reply with
    ``envelope + encode_snapshot_reply(...)`` so either kind of client gets the reply.
    """
    if len(frames) < 2:
        raise WireError(f"routed snapshot request has {len(frames)} frames, expected >= 2")
    return list(frames[:-1]), frames[-1]


def encode_snapshot_error(reason: str) -> list[bytes]:
    """The reply to a request the service refuses: ``[b"ERROR", {"reason": ...}]``.

    A REQ client waits for exactly one reply, so a bad request must still be answered.
    """
    return [ERROR, orjson.dumps({"reason": reason})]


def encode_snapshot_reply(items: Sequence[tuple[bytes, bytes]], prefix: bytes) -> list[bytes]:
    """``[topic, payload]`` for each item, then ``[b"END", {"count": n, "prefix": ...}]``."""
    try:
        prefix_text = prefix.decode()
    except UnicodeDecodeError:
        raise WireError("snapshot prefix is not UTF-8") from None
    frames: list[bytes] = []
    for item_topic, payload in items:
        frames.append(item_topic)
        frames.append(payload)
    frames.append(END)
    frames.append(orjson.dumps({"count": len(items), "prefix": prefix_text}))
    return frames


def decode_snapshot_reply(frames: Sequence[bytes]) -> list[tuple[bytes, dict[str, Any]]]:
    """Check a snapshot reply and return its ``(topic, payload)`` pairs.

    Raises :class:`WireError` with the service's reason for an ``ERROR`` reply. Checks the
    end marker, that ``count`` matches the pairs, that each topic is well formed,
    matches the requested prefix and agrees with its payload's channel, category and symbol.
    """
    if len(frames) == 2 and frames[0] == ERROR:
        refusal = json_object(frames[1], "snapshot ERROR body").get("reason")
        raise WireError(f"snapshot request refused: {refusal}")
    if len(frames) < 2 or len(frames) % 2:
        raise WireError(f"snapshot reply has {len(frames)} frames; expected pairs ending in END")
    if frames[-2] != END:
        raise WireError("snapshot reply does not end with the END marker")
    end = json_object(frames[-1], "snapshot END body")
    count, prefix = end.get("count"), end.get("prefix")
    if not isinstance(count, int) or isinstance(count, bool) or not isinstance(prefix, str):
        raise WireError("snapshot END body needs an integer count and a string prefix")
    n = len(frames) // 2 - 1
    if count != n:
        raise WireError(f"snapshot END says {count} items but the reply has {n}")
    prefix_bytes = prefix.encode()
    items: list[tuple[bytes, dict[str, Any]]] = []
    for i in range(0, len(frames) - 2, 2):
        item_topic = bytes(frames[i])
        if not item_topic.startswith(prefix_bytes):
            raise WireError(f"snapshot item {item_topic!r} does not match prefix {prefix!r}")
        channel, category, symbol = parse_gateway_topic(item_topic)
        payload = decode_payload(frames[i + 1])
        if (payload["channel"], payload["category"], payload["symbol"]) != (
            channel,
            category,
            symbol,
        ):
            raise WireError(f"snapshot item {item_topic!r} carries another topic's payload")
        items.append((item_topic, payload))
    return items

"""Bybit's control plane on a public connection: what the ingestor sends, what it answers.

Requests: ``subscribe`` / ``unsubscribe`` batched within the category's args limit
(:data:`~mdgw.core.bybit_spec.MAX_ARGS_PER_REQUEST`), and ``ping``. Answers: acks, errors and
pongs, decoded into a :class:`Control`. Data frames are told apart by their first bytes alone
(:func:`classify`); :mod:`mdgw.core.bybit` decodes them.

Protocol facts used here (see ../shared/reference/bybit-v5-public.md):

- Data frames carry ``topic``; Bybit puts it first on every category, so ``{"topic":`` at
  byte 0 identifies them without parsing (the ingestor's hot path).
- A pong is ``ret_msg == "pong"`` (spot and derivatives answer ``{"op":"ping"}`` with
  ``"op":"ping"``) or ``op == "pong"`` (options; one spot capture too).
- Subscribe acks and errors carry ``success``; errors name the topic in ``ret_msg`` as
  ``error:...,topic:X`` (derivatives) or ``Invalid symbol :[X]`` (spot), and may lack
  ``req_id``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson

from mdgw.core.bybit_spec import MAX_ARGS_PER_REQUEST
from mdgw.core.errors import ParseError

__all__ = [
    "Control",
    "ControlFields",
    "FrameKind",
    "classify",
    "control_from",
    "decode_control",
    "failed_topics",
    "ping_request",
    "request_batches",
    "subscribe_requests",
    "unsubscribe_requests",
]

_DATA_PREFIX: Final = b'{"topic":'


class FrameKind(enum.Enum):
    """What a received frame is, as far as the ingestor cares."""

    DATA = "data"  # has a topic: forward it unchanged
    PONG = "pong"
    ACK = "ack"  # success: true answer to subscribe / unsubscribe
    ERROR = "error"  # success: false
    UNKNOWN = "unknown"  # valid JSON of no known shape, or not JSON at all


@dataclass(slots=True, frozen=True)
class Control:
    """A decoded non-data frame (ack, pong, error)."""

    kind: FrameKind
    op: str
    ret_msg: str
    req_id: str
    conn_id: str
    failed_topics: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()  # options' COMMAND_RESP: the topics it acknowledges


def classify(frame: bytes) -> FrameKind:
    """Cheap first look: data frames are recognised by their first bytes alone."""
    if frame.startswith(_DATA_PREFIX):
        return FrameKind.DATA
    try:
        return decode_control(frame).kind
    except ParseError:
        return FrameKind.UNKNOWN


class ControlFields(msgspec.Struct):
    """The fields of a non-data frame that say what it is.

    Every field optional and of any JSON type: a control frame of an unknown shape is
    UNKNOWN, not malformed. ``topic`` is ``UNSET`` unless the frame has one (any value).
    """

    topic: Any = msgspec.UNSET
    op: Any = None
    ret_msg: Any = None
    req_id: Any = None
    conn_id: Any = None
    success: Any = None
    type: Any = None
    data: Any = None


_decode_control_fields = msgspec.json.Decoder(ControlFields).decode


def decode_control(frame: bytes | str) -> Control:
    """Decode a non-data frame: pong, subscribe/unsubscribe ack or error."""
    try:
        msg = _decode_control_fields(frame)
    except msgspec.ValidationError:
        raise ParseError("frame is not a JSON object") from None
    except msgspec.DecodeError as exc:
        raise ParseError(f"invalid JSON: {str(exc)[:80]}") from None
    except UnicodeDecodeError as exc:  # msgspec's refusal of invalid UTF-8 in a string
        raise ParseError(f"invalid UTF-8: {str(exc)[:80]}") from None
    return control_from(msg)


def control_from(msg: ControlFields) -> Control:
    """What a non-data frame is (Bybit's rules; :func:`decode_control` parses the fields)."""
    if msg.topic is not msgspec.UNSET:
        return Control(FrameKind.DATA, "", "", "", "")
    op = _opt_str(msg.op)
    ret_msg = _opt_str(msg.ret_msg)
    req_id = _opt_str(msg.req_id)
    conn_id = _opt_str(msg.conn_id)
    if ret_msg == "pong" or op == "pong":
        return Control(FrameKind.PONG, op, ret_msg, req_id, conn_id)
    success = msg.success
    if msg.type == "COMMAND_RESP":  # option/spread shape: per-topic lists
        # It names no op: the topics it lists say which request it answers.
        data = msg.data
        fail = data.get("failTopics") if isinstance(data, dict) else None
        ok = data.get("successTopics") if isinstance(data, dict) else None
        failed = tuple(t for t in fail if isinstance(t, str)) if isinstance(fail, list) else ()
        good = tuple(t for t in ok if isinstance(t, str)) if isinstance(ok, list) else ()
        kind = FrameKind.ERROR if failed or success is False else FrameKind.ACK
        return Control(kind, op, ret_msg, req_id, conn_id, failed, good)
    if success is True:
        return Control(FrameKind.ACK, op, ret_msg, req_id, conn_id)
    if success is False:
        return Control(FrameKind.ERROR, op, ret_msg, req_id, conn_id, failed_topics(ret_msg))
    return Control(FrameKind.UNKNOWN, op, ret_msg, req_id, conn_id)


def failed_topics(ret_msg: str) -> tuple[str, ...]:
    """Topics named in an error text, in either of Bybit's two spellings.

    ``error:already subscribed,topic:publicTrade.BTCUSDT`` (derivatives) and
    ``Invalid symbol :[orderbook.50.NOSUCHSYM]`` (spot). Empty when none is named
    (``args size >10``): then the whole request failed.
    """
    if "topic:" in ret_msg:
        tail = ret_msg.split("topic:", 1)[1]
        return tuple(t for t in (p.strip() for p in tail.split(",")) if t)
    if "[" in ret_msg and "]" in ret_msg:
        inner = ret_msg[ret_msg.index("[") + 1 : ret_msg.rindex("]")]
        return tuple(t for t in (p.strip() for p in inner.split(",")) if t)
    return ()


def ping_request(req_id: str = "") -> bytes:
    return orjson.dumps({"req_id": req_id, "op": "ping"} if req_id else {"op": "ping"})


def subscribe_requests(category: str, topics: Sequence[str], req_id_prefix: str) -> list[bytes]:
    """``subscribe`` requests for topics, batched within the category's per-request limit.

    Request i carries ``req_id = f"{req_id_prefix}{i}"`` so its ack can be matched.
    """
    return _requests("subscribe", category, topics, req_id_prefix)


def unsubscribe_requests(category: str, topics: Sequence[str], req_id_prefix: str) -> list[bytes]:
    return _requests("unsubscribe", category, topics, req_id_prefix)


def request_batches(category: str, topics: Sequence[str]) -> list[list[str]]:
    """Split topics into request-sized batches (spot: 10 args per request)."""
    try:
        size = MAX_ARGS_PER_REQUEST[category]
    except KeyError:
        raise ValueError(f"unknown category {category!r}") from None
    return [list(topics[i : i + size]) for i in range(0, len(topics), size)]


def _requests(op: str, category: str, topics: Sequence[str], req_id_prefix: str) -> list[bytes]:
    return [
        orjson.dumps({"req_id": f"{req_id_prefix}{i}", "op": op, "args": batch})
        for i, batch in enumerate(request_batches(category, topics))
    ]


def _opt_str(value: object) -> str:
    return value if isinstance(value, str) else ""

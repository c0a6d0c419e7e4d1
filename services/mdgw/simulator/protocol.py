"""Bybit v5 public-stream protocol of one simulated connection. Sans-I/O.

:class:`Session` takes what the client sent and returns what to answer, in Bybit's shape
for the connection's category, together with the subscription changes the shell must carry
out. It never raises on client input: anything malformed becomes an error reply.

Replies (``conn_id`` is the session's; ``req_id`` is echoed when the client sent one):

- spot ack: ``{"success":true,"ret_msg":"subscribe","conn_id":…,"op":"subscribe"}``, with
  ``"req_id":…`` before ``op`` only when the request had one;
- linear/inverse ack: ``{"success":true,"ret_msg":"","conn_id":…,"req_id":"","op":"subscribe"}``;
- unsubscribe acks: the same with ``"op":"unsubscribe"`` (spot: ``"ret_msg":"unsubscribe"``);
- spot pong: ``{"success":true,"ret_msg":"pong","conn_id":…,"op":"ping"}`` (``req_id`` as above);
- linear/inverse pong: ``{"success":true,"ret_msg":"pong","conn_id":…,"req_id":"","op":"ping"}``;
- error: the ack's shape with ``"success":false`` and ``ret_msg`` one of the texts below;
  ``op`` is the request's op (``""`` when there is none).

Error texts (``ret_msg``):

- ``args size >10``: more than 10 args in one spot subscribe (Bybit's text);
- ``error:handler not found,topic:T``: T is not a topic served here: unknown symbol,
  unknown topic kind, or a depth Bybit does not offer (``orderbook.500.X``) (Bybit's text);
- ``error:already subscribed,topic:T``: T is already subscribed on this connection, or
  twice in the request (Bybit's text);
- ``error:args length >21000,topic:T``: subscribing would take the connection's args past
  21,000 characters (the sum of the topic strings' lengths); T is the first arg of the
  request. Bybit documents the limit but not its error text: this one is ours;
- ``error:invalid request``: not JSON, not an object, unknown or missing ``op``, ``args``
  not a list of strings. Ours too; the connection stays open.

Any error rejects the whole request: nothing in it is subscribed or unsubscribed (Bybit does
this for ``already subscribed``, ccxt/ccxt#30284). Unsubscribing a topic that is not
subscribed is not an error: it is acknowledged and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from mdgw.core.bybit_spec import MAX_ARGS_PER_CONNECTION

__all__ = [
    "ARGS_LENGTH_LIMIT",
    "SPOT_ARGS_LIMIT",
    "ClientRequestOutcome",
    "Reply",
    "ReplyKind",
    "Session",
    "Subscribed",
    "Unsubscribed",
]

SPOT_ARGS_LIMIT: Final = 10
OPTION_ARGS_LIMIT: Final = MAX_ARGS_PER_CONNECTION["option"]  # args per option connection
ARGS_LENGTH_LIMIT: Final = 21_000
INVALID_REQUEST: Final = "error:invalid request"

ReplyKind = Literal["ack", "pong", "error"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A control frame to send back (ack, pong or error)."""

    kind: ReplyKind
    payload: bytes


@dataclass(frozen=True, slots=True)
class Subscribed:
    """Topics now subscribed; send the ack and, for book topics, a snapshot each.

    ``snapshot_first``: send the snapshots before the ack, as Bybit sometimes does
    (JKorf/Bybit.Net#200).
    """

    topics: tuple[str, ...]
    ack: Reply
    snapshot_first: bool


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """Topics no longer subscribed; send the ack."""

    topics: tuple[str, ...]
    ack: Reply


# What one client request on the simulated websocket comes to: the shell's next move.
ClientRequestOutcome = Reply | Subscribed | Unsubscribed


class Session:
    """One client connection's protocol state: its category, conn_id and subscriptions.

    ``topic_exists(topic)`` says whether the simulator serves a topic on this category;
    ``snapshot_first()`` is asked once per successful subscribe (seeded by the shell).
    """

    def __init__(
        self,
        category: str,
        conn_id: str,
        topic_exists: Callable[[str], bool],
        snapshot_first: Callable[[], bool] = lambda: False,
        clock_ms: Callable[[], int] = lambda: 0,
    ) -> None:
        self.category = category
        self._option = category == "option"
        self._clock_ms = clock_ms
        self.conn_id = conn_id
        self._topic_exists = topic_exists
        self._snapshot_first = snapshot_first
        self._spot = category == "spot"
        self.topics: list[str] = []  # subscribed, in subscription order
        self._subscribed: set[str] = set()
        self.args_length = 0

    def receive(self, message: str | bytes) -> ClientRequestOutcome:
        """Handle one client message."""
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self._error("", None, INVALID_REQUEST)
        if not isinstance(request, dict):
            return self._error("", None, INVALID_REQUEST)
        op = request.get("op")
        req_id = request.get("req_id")
        req_id = None if req_id is None else str(req_id)
        if op == "ping":
            if self._option:  # options: {"args":["<server ms>"],"op":"pong"} (Bybit docs)
                body = {"args": [str(self._clock_ms())], "op": "pong"}
                return Reply("pong", orjson.dumps(body))
            return self._reply("pong", "ping", req_id, True, "pong")
        if op not in ("subscribe", "unsubscribe"):
            return self._error(op if isinstance(op, str) else "", req_id, INVALID_REQUEST)
        args = request.get("args")
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            return self._error(op, req_id, INVALID_REQUEST)
        if op == "subscribe":
            return self._subscribe(args, req_id)
        return self._unsubscribe(args, req_id)

    def _subscribe(self, args: list[str], req_id: str | None) -> ClientRequestOutcome:
        if self._spot and len(args) > SPOT_ARGS_LIMIT:
            return self._error("subscribe", req_id, f"args size >{SPOT_ARGS_LIMIT}")
        if self._option and len(self.topics) + len(args) > OPTION_ARGS_LIMIT:
            first = args[0] if args else ""
            return self._error(
                "subscribe", req_id, f"error:args count >{OPTION_ARGS_LIMIT},topic:{first}"
            )
        seen: set[str] = set()
        for topic in args:
            if not self._topic_exists(topic):
                return self._error("subscribe", req_id, f"error:handler not found,topic:{topic}")
            if topic in self._subscribed or topic in seen:
                return self._error("subscribe", req_id, f"error:already subscribed,topic:{topic}")
            seen.add(topic)
        length = self.args_length + sum(len(topic) for topic in args)
        if length > ARGS_LENGTH_LIMIT:
            first = args[0] if args else ""
            return self._error(
                "subscribe", req_id, f"error:args length >{ARGS_LENGTH_LIMIT},topic:{first}"
            )
        self.args_length = length
        self._subscribed.update(args)
        self.topics.extend(args)
        if self._option:
            ack = self._command_resp("ack", True, args, [])
        else:
            ack = self._reply("ack", "subscribe", req_id, True, "subscribe" if self._spot else "")
        return Subscribed(tuple(args), ack, bool(args) and self._snapshot_first())

    def _unsubscribe(self, args: list[str], req_id: str | None) -> ClientRequestOutcome:
        gone = tuple(dict.fromkeys(topic for topic in args if topic in self._subscribed))
        for topic in gone:
            self._subscribed.discard(topic)
            self.topics.remove(topic)
            self.args_length -= len(topic)
        if self._option:
            ack = self._command_resp("ack", True, list(args), [])
        else:
            ack = self._reply(
                "ack", "unsubscribe", req_id, True, "unsubscribe" if self._spot else ""
            )
        return Unsubscribed(gone, ack)

    def _error(self, op: str, req_id: str | None, text: str) -> Reply:
        if self._option and "topic:" in text:
            # Options list the refused topics instead of naming them in ret_msg.
            return self._command_resp("error", False, [], [text.split("topic:", 1)[1]], text)
        return self._reply("error", op, req_id, False, text)

    def _command_resp(
        self, kind: ReplyKind, success: bool, ok: list[str], failed: list[str], ret_msg: str = ""
    ) -> Reply:
        # Options' shape (Bybit docs, connect): no op, no req_id, per-topic lists.
        body: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id}
        body["data"] = {"failTopics": failed, "successTopics": ok}
        body["type"] = "COMMAND_RESP"
        return Reply(kind, orjson.dumps(body))

    def _reply(
        self, kind: ReplyKind, op: str, req_id: str | None, success: bool, ret_msg: str
    ) -> Reply:
        # Spot leaves req_id out when the client sent none; linear/inverse always carry it.
        body: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id}
        if req_id is not None or not self._spot:
            body["req_id"] = req_id or ""
        body["op"] = op
        return Reply(kind, orjson.dumps(body))

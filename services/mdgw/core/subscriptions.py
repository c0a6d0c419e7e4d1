"""Subscription state of one Bybit websocket connection, sans-I/O.

:class:`Subscriptions` owns a fixed list of topics (one group of
:func:`mdgw.core.connection_plan.plan_connections`) and decides what to send and when: the
subscribe requests after a (re)connect, the unsubscribe/subscribe pair of a resync, what
an ack or a ``success: false`` means for each topic. It sends nothing, reads no clock and
logs nothing: the connection shell passes ``now`` (monotonic seconds) and frames in, sends
the returned request bytes in order and logs the returned outcomes.

Bybit rules this encodes (../shared/reference/bybit-v5-public.md §2, §6):

- A request that names a topic already subscribed on the connection is rejected *whole*
  (``error:already subscribed,topic:X``): every other topic in it is silently not
  subscribed. So a topic is only ever requested from :attr:`TopicState.IDLE`, and the
  innocent topics of a rejected batch are requested again, without the culprit.
- A topic Bybit refuses (``handler not found``, ``Invalid symbol``) is refused for as long
  as this process runs: it is never requested again, not even after a reconnect.
  Replaying it forever is the pybit#373 bug.
- Errors may lack ``req_id`` (spot's ``args size >10``) and may or may not name topics, so
  an error is attributed to the topics it names, else to the request its ``req_id``
  names, else to the oldest request still waiting for an answer.
- Data is never gated on the ack: the first snapshot may arrive before it. The state
  here is only about what to (re)request.
- A resync is unsubscribe, then (after the unsubscribe's answer, or ``unsubscribe_wait``
  seconds) subscribe again: the new subscription starts with a fresh snapshot. At most
  one resync per topic is in flight.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mdgw.core.bybit_control import (
    Control,
    FrameKind,
    request_batches,
    subscribe_requests,
    unsubscribe_requests,
)

__all__ = [
    "ACK_TIMEOUT",
    "UNSUBSCRIBE_WAIT",
    "ControlOutcome",
    "PollOutcome",
    "ResyncDecision",
    "Subscriptions",
    "TopicState",
]

UNSUBSCRIBE_WAIT = 2.0  # seconds a resync waits for the unsubscribe's answer
ACK_TIMEOUT = 10.0  # seconds after which an unanswered request is given up on

_SUBSCRIBE = "subscribe"
_UNSUBSCRIBE = "unsubscribe"
_ALREADY_SUBSCRIBED = "already subscribed"


class TopicState(enum.Enum):
    """Where one topic stands on the current websocket."""

    IDLE = "idle"  # not subscribed (or no websocket): the next subscribe may include it
    SUBSCRIBING = "subscribing"  # subscribe sent, no answer yet
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBING = "unsubscribing"  # resync: unsubscribe sent, no answer yet
    REFUSED = "refused"  # Bybit said no; never requested again by this process


class ResyncDecision(enum.Enum):
    """What :meth:`Subscriptions.request_resync` did with a resync request."""

    STARTED = "started"  # unsubscribe sent; subscribe follows
    NOT_OWNED = "not_owned"  # not a topic of this connection
    REFUSED = "refused"  # Bybit refused the topic; nothing to resync
    IN_FLIGHT = "in_flight"  # a resync of this topic is already under way
    PENDING = "pending"  # not subscribed right now (no websocket, or subscribe unanswered):
    # a fresh snapshot comes with the subscription anyway


@dataclass(slots=True)
class _Request:
    req_id: str
    op: str
    topics: tuple[str, ...]
    sent_at: float


@dataclass(slots=True)
class _Resync:
    deadline: float  # when to subscribe again if the unsubscribe is still unanswered
    resubscribed: bool = False


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    """What an ack or error frame meant. Send :attr:`requests` in order."""

    requests: list[bytes] = field(default_factory=list)
    op: str = ""  # op of the request the frame answered ("" when none matched)
    req_id: str = ""  # req_id of that request
    topics: tuple[str, ...] = ()  # the topics of that request
    subscribed: tuple[str, ...] = ()  # topics now known subscribed
    refused: tuple[str, ...] = ()  # topics refused by this frame (log them once, as errors)
    retried: tuple[str, ...] = ()  # innocent topics of a rejected batch, requested again
    resubscribed: tuple[str, ...] = ()  # resync: topics subscribed again after unsubscribe
    matched: bool = True  # False: the frame answered no request of ours


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What the passage of time meant. Send :attr:`requests` in order."""

    requests: list[bytes] = field(default_factory=list)
    resubscribed: tuple[str, ...] = ()  # resync: unsubscribe unanswered, subscribed again
    unanswered: tuple[str, ...] = ()  # topics of requests given up on after ACK_TIMEOUT


class Subscriptions:
    """The subscription state of one connection slot: its topics across websockets.

    One instance lives as long as the connection slot, across reconnects, so refused
    topics stay refused. Call :meth:`on_connect` when a websocket opens,
    :meth:`on_disconnect` when it closes, :meth:`on_control` for every ack and error frame,
    :meth:`request_resync` for a resync request and :meth:`poll` by
    :meth:`next_deadline`.
    """

    def __init__(
        self,
        category: str,
        topics: Sequence[str],
        *,
        unsubscribe_wait: float = UNSUBSCRIBE_WAIT,
        ack_timeout: float = ACK_TIMEOUT,
    ) -> None:
        request_batches(category, [])  # ValueError now for an unknown category
        if len(set(topics)) != len(topics):
            raise ValueError("topics must be distinct")
        self.category = category
        self.topics: tuple[str, ...] = tuple(topics)
        self.unsubscribe_wait = unsubscribe_wait
        self.ack_timeout = ack_timeout
        self._state: dict[str, TopicState] = dict.fromkeys(self.topics, TopicState.IDLE)
        self._pending: dict[str, _Request] = {}  # req_id -> request, oldest first
        self._resyncs: dict[str, _Resync] = {}
        self._connected = False
        self._requests_made = 0

    # ------------------------------------------------------------------ queries

    @property
    def connected(self) -> bool:
        return self._connected

    def owns(self, topic: str) -> bool:
        return topic in self._state

    def state(self, topic: str) -> TopicState:
        return self._state[topic]

    def topics_in(self, state: TopicState) -> tuple[str, ...]:
        return tuple(t for t in self.topics if self._state[t] is state)

    @property
    def refused(self) -> tuple[str, ...]:
        return self.topics_in(TopicState.REFUSED)

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    @property
    def resyncs_in_flight(self) -> tuple[str, ...]:
        return tuple(self._resyncs)

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which :meth:`poll` has something to do, if any."""
        deadlines = [r.deadline for r in self._resyncs.values() if not r.resubscribed]
        if self._pending:
            oldest = next(iter(self._pending.values()))
            deadlines.append(oldest.sent_at + self.ack_timeout)
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------- events

    def on_connect(self, now: float) -> list[bytes]:
        """A websocket opened: the subscribe requests for every topic not refused."""
        self._reset_session()
        self._connected = True
        return self._subscribe(self.topics, now)

    def on_disconnect(self) -> None:
        """The websocket closed: nothing is subscribed any more, nothing is pending."""
        self._reset_session()

    def on_control(self, control: Control, now: float) -> ControlOutcome:
        """An ack or error frame (kind ACK or ERROR; others are ignored)."""
        if control.kind is FrameKind.ACK:
            return self._on_ack(control, now)
        if control.kind is FrameKind.ERROR:
            return self._on_error(control, now)
        return ControlOutcome(matched=False)

    def request_resync(self, topic: str, now: float) -> tuple[ResyncDecision, list[bytes]]:
        """Unsubscribe ``topic`` so that it can be subscribed again with a fresh snapshot."""
        state = self._state.get(topic)
        if state is None:
            return ResyncDecision.NOT_OWNED, []
        if state is TopicState.REFUSED:
            return ResyncDecision.REFUSED, []
        if topic in self._resyncs:
            return ResyncDecision.IN_FLIGHT, []
        if not self._connected or state is not TopicState.SUBSCRIBED:
            return ResyncDecision.PENDING, []
        self._resyncs[topic] = _Resync(deadline=now + self.unsubscribe_wait)
        return ResyncDecision.STARTED, self._send(_UNSUBSCRIBE, (topic,), now)

    def poll(self, now: float) -> PollOutcome:
        """Act on deadlines that have passed (see :meth:`next_deadline`)."""
        resubscribe: list[str] = []
        for topic, resync in self._resyncs.items():
            if not resync.resubscribed and resync.deadline <= now:
                # The unsubscribe went unanswered: assume it took effect and go on.
                if self._state[topic] is TopicState.UNSUBSCRIBING:
                    self._state[topic] = TopicState.IDLE
                resubscribe.append(topic)
        unanswered: list[str] = []
        for req_id, request in list(self._pending.items()):
            if request.sent_at + self.ack_timeout > now:
                break  # oldest first: the rest are younger
            del self._pending[req_id]
            for topic in request.topics:
                # No answer is not a refusal; assume Bybit did what was asked, so that
                # the topic is neither requested twice nor stuck.
                if request.op == _SUBSCRIBE and self._state[topic] is TopicState.SUBSCRIBING:
                    self._state[topic] = TopicState.SUBSCRIBED
                    self._finish_resync(topic)
                    unanswered.append(topic)
                elif request.op == _UNSUBSCRIBE:
                    unanswered.append(topic)
        requests, resubscribed = self._resubscribe(resubscribe, now)
        return PollOutcome(requests, resubscribed, tuple(unanswered))

    # ---------------------------------------------------------------- internals

    def _reset_session(self) -> None:
        self._connected = False
        self._pending.clear()
        self._resyncs.clear()
        for topic, state in self._state.items():
            if state is not TopicState.REFUSED:
                self._state[topic] = TopicState.IDLE

    def _send(self, op: str, topics: Iterable[str], now: float) -> list[bytes]:
        topics = list(topics)
        if not topics or not self._connected:
            return []
        prefix = f"{self._requests_made}."
        self._requests_made += 1
        build = subscribe_requests if op == _SUBSCRIBE else unsubscribe_requests
        payloads = build(self.category, topics, prefix)
        batches = request_batches(self.category, topics)
        new_state = TopicState.SUBSCRIBING if op == _SUBSCRIBE else TopicState.UNSUBSCRIBING
        for i, batch in enumerate(batches):
            req_id = f"{prefix}{i}"  # the req_id subscribe_requests gives batch i
            self._pending[req_id] = _Request(req_id, op, tuple(batch), now)
            for topic in batch:
                self._state[topic] = new_state
        return payloads

    def _subscribe(self, topics: Iterable[str], now: float) -> list[bytes]:
        # The one rule that keeps Bybit from rejecting a whole batch: only IDLE topics.
        return self._send(_SUBSCRIBE, (t for t in topics if self._state[t] is TopicState.IDLE), now)

    def _resubscribe(
        self, topics: Sequence[str], now: float
    ) -> tuple[list[bytes], tuple[str, ...]]:
        """Resync step two: subscribe again the topics whose unsubscribe is done."""
        ready: list[str] = []
        for topic in topics:
            if self._state[topic] is TopicState.IDLE:
                self._resyncs[topic].resubscribed = True
                ready.append(topic)
            else:  # cannot happen while the state machine holds; never leave a resync stuck
                self._finish_resync(topic)
        return self._subscribe(ready, now), tuple(ready)

    def _finish_resync(self, topic: str) -> None:
        self._resyncs.pop(topic, None)

    def _match(self, control: Control) -> _Request | None:
        """The pending request an ack answers: by req_id, else the oldest of its op."""
        if control.req_id:
            # Bybit echoes our req_id; an unknown one answers a request given up on.
            return self._pending.get(control.req_id)
        if control.topics:  # options answer with the topics, no op, no req_id
            for request in self._pending.values():
                if any(t in request.topics for t in control.topics):
                    return request
        for request in self._pending.values():
            if request.op == control.op or not control.op:
                return request
        return None

    def _on_ack(self, control: Control, now: float) -> ControlOutcome:
        request = self._match(control)
        if request is None:
            return ControlOutcome(matched=False)
        del self._pending[request.req_id]
        if request.op == _SUBSCRIBE:
            subscribed: list[str] = []
            for topic in request.topics:
                if self._state[topic] is TopicState.SUBSCRIBING:
                    self._state[topic] = TopicState.SUBSCRIBED
                    subscribed.append(topic)
                    self._finish_resync(topic)
            return ControlOutcome(
                op=request.op,
                req_id=request.req_id,
                topics=request.topics,
                subscribed=tuple(subscribed),
            )
        requests, resubscribed = self._unsubscribed(request.topics, now)
        return ControlOutcome(
            requests, request.op, request.req_id, request.topics, resubscribed=resubscribed
        )

    def _unsubscribed(
        self, topics: Sequence[str], now: float
    ) -> tuple[list[bytes], tuple[str, ...]]:
        """An unsubscribe was answered: resyncs still waiting for it subscribe again."""
        waiting: list[str] = []
        for topic in topics:
            if self._state[topic] is TopicState.UNSUBSCRIBING:
                self._state[topic] = TopicState.IDLE
            resync = self._resyncs.get(topic)
            if resync is not None and not resync.resubscribed:
                waiting.append(topic)
        return self._resubscribe(waiting, now)

    def _on_error(self, control: Control, now: float) -> ControlOutcome:
        named = [t for t in control.failed_topics if t in self._state]
        request = self._match_error(control, named)
        if request is None:
            return ControlOutcome(matched=False)
        del self._pending[request.req_id]
        if request.op == _UNSUBSCRIBE:
            # A failed unsubscribe refuses nothing: the resync goes on with its subscribe
            # (if the topic is still subscribed, Bybit answers "already subscribed", which
            # leaves it subscribed; the book builder asks again after its deadline).
            requests, resubscribed = self._unsubscribed(request.topics, now)
            return ControlOutcome(
                requests, request.op, request.req_id, request.topics, resubscribed=resubscribed
            )
        culprits = [t for t in named if t in request.topics] or list(request.topics)
        innocent = [t for t in request.topics if t not in culprits]
        subscribed: list[str] = []
        refused: list[str] = []
        for topic in culprits:
            if self._state[topic] is not TopicState.SUBSCRIBING:
                continue
            if _ALREADY_SUBSCRIBED in control.ret_msg:
                # Bybit has it: treat as subscribed rather than refuse a live topic.
                self._state[topic] = TopicState.SUBSCRIBED
                subscribed.append(topic)
            else:
                self._state[topic] = TopicState.REFUSED
                refused.append(topic)
            self._finish_resync(topic)
        # Bybit rejects the whole batch: the other topics in it were not subscribed.
        retry = [t for t in innocent if self._state[t] is TopicState.SUBSCRIBING]
        for topic in retry:
            self._state[topic] = TopicState.IDLE
        requests = self._subscribe(retry, now)
        return ControlOutcome(
            requests,
            request.op,
            request.req_id,
            request.topics,
            subscribed=tuple(subscribed),
            refused=tuple(refused),
            retried=tuple(retry),
        )

    def _match_error(self, control: Control, named: Sequence[str]) -> _Request | None:
        if control.req_id:
            return self._pending.get(control.req_id)
        for request in self._pending.values():  # oldest first
            if any(t in request.topics for t in named):
                return request
        if control.op:
            for request in self._pending.values():
                if request.op == control.op:
                    return request
        return next(iter(self._pending.values()), None)

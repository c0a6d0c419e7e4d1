"""Per-topic sequence tracking for a consumer that joins late, sans-I/O.

The late-joiner recipe of the ZeroMQ guide ("Clone"), for mdgw's pub and snapshot sockets:

1. connect the SUB socket and subscribe first, so updates start queueing;
2. ask the snapshot socket for the current ``book``/``bbo`` messages and feed every item to
   :meth:`Follower.on_snapshot` (deliver the item when it returns True);
3. then read updates and feed each to :meth:`Follower.on_message`: deliver ``DELIVER`` and
   ``GAP`` and ``RESTART``, drop ``STALE`` (older than what was delivered, e.g. queued
   before the snapshot);
4. after each batch, ask the snapshot socket again for :meth:`Follower.take_resnapshots`.

Every published message carries ``seq`` (1, 2, 3... per topic) and ``pub_ns``. A hole in
``seq`` means messages were lost (a slow consumer past its high-water mark, or a join
race): ``GAP``. ``seq`` is never reset while the book builder runs; a ``seq`` that goes
back with a newer ``pub_ns`` means the builder restarted: ``RESTART``. A ``book`` or
``bbo`` message is a complete state, so delivering it after a hole is right; a consumer
that keeps state derived from several messages re-snapshots before trusting it again.
``trade`` and ``status`` topics have no snapshot: a hole there is reported and the stream
goes on from the next message.

No I/O, no clock, no sockets: a copy of this file (plus ``mdgw.core.wire`` for the
framing) is all a consumer of its own needs.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["SNAPSHOT_CHANNELS", "Delivery", "Follower", "Gap"]

SNAPSHOT_CHANNELS: tuple[bytes, ...] = (b"book.", b"bbo.", b"rpi.")
"""Topic prefixes the snapshot service serves (DESIGN §4: current book and bbo messages)."""


class Delivery(enum.Enum):
    """What to do with one update."""

    DELIVER = "deliver"  # the next message of its topic (or the first one seen)
    STALE = "stale"  # not newer than what was delivered: drop it
    GAP = "gap"  # newer, after a hole in seq: deliver it; see Follower.last_gap
    RESTART = "restart"  # the publisher restarted (seq went back, pub_ns forward): deliver


class Gap(NamedTuple):
    """A hole in one topic's ``seq``: ``expected`` was due, ``got`` arrived."""

    topic: bytes
    expected: int
    got: int

    @property
    def missed(self) -> int:
        return self.got - self.expected


class Follower:
    """The last delivered ``(seq, pub_ns)`` of every topic, and the topics to re-snapshot."""

    __slots__ = ("_last", "_wanted", "last_gap")

    def __init__(self) -> None:
        self._last: dict[bytes, tuple[int, int]] = {}
        self._wanted: set[bytes] = set()
        self.last_gap: Gap | None = None
        """The hole behind the latest ``GAP`` outcome (also set on ``RESTART``)."""

    def on_snapshot(self, topic: bytes, seq: int, pub_ns: int) -> bool:
        """Take one item of a snapshot reply; True if it is newer than what was delivered.

        The item is the topic's last published message itself, so an older one (a reply
        that crossed updates already delivered) is simply not delivered again.
        """
        last = self._last.get(topic)
        if last is not None and seq <= last[0] and pub_ns <= last[1]:
            return False
        # Newer, or a new publisher (seq back, pub_ns forward): this is the baseline now.
        self._last[topic] = (seq, pub_ns)
        self._wanted.discard(topic)
        return True

    def on_message(self, topic: bytes, seq: int, pub_ns: int) -> Delivery:
        """Check one update against the last delivered message of its topic."""
        last = self._last.get(topic)
        if last is None:
            self._last[topic] = (seq, pub_ns)
            return Delivery.DELIVER
        last_seq, last_pub_ns = last
        if seq == last_seq + 1:
            self._last[topic] = (seq, pub_ns)
            return Delivery.DELIVER
        if seq > last_seq:
            outcome = Delivery.GAP
        elif pub_ns > last_pub_ns:
            # Messages queued before a snapshot are older than it in both seq and pub_ns.
            # One with a lower seq but a later publish time comes from a restarted builder.
            outcome = Delivery.RESTART
        else:
            return Delivery.STALE
        self.last_gap = Gap(topic, last_seq + 1, seq)
        self._last[topic] = (seq, pub_ns)
        if topic.startswith(SNAPSHOT_CHANNELS):
            self._wanted.add(topic)
        return outcome

    def take_resnapshots(self) -> list[bytes]:
        """Topics to ask the snapshot service for (each a full topic, a valid request).

        Returns each topic once and forgets it: call after a batch of updates.
        """
        wanted = sorted(self._wanted)
        self._wanted.clear()
        return wanted

    def last_seq(self, topic: bytes) -> int | None:
        """The seq of the last message delivered on ``topic``, None before the first."""
        last = self._last.get(topic)
        return None if last is None else last[0]

    def forget(self, topic: bytes) -> None:
        """Drop what is known of ``topic``: its next message is taken as the first."""
        self._last.pop(topic, None)
        self._wanted.discard(topic)

"""The book builder's state machine, sans-I/O: raw envelopes in, messages out.

The shell (``mdgw.book_builder.service``) feeds every message from the raw PULL
socket to :meth:`Hub.on_raw`, calls :meth:`Hub.tick` about every 100 ms, and after
each batch sends what the hub queued:

- ``outbox``: ``(topic, payload)`` pairs for the pub socket;
- ``control``: resync requests (multipart) for the control socket;
- ``events``: ``(event, fields)`` for the log; rare by construction (state changes,
  bad input), never one per frame.

Rules (docs/architecture.md, "Book rules"): a book is published only while it is live. A
topic may arrive on several ingestor connections (*sources*);
:class:`~mdgw.core.arbiter.Arbiter` decides which frame the book takes: the first delivery
of ``last_u + 1`` from any source, later copies are duplicates, snapshots never older than
the book. A source that loses frames (a hole in its envelope sequence, a malformed frame),
skips a ``u``, closes or whose ingestor goes silent costs nothing while another source can
continue the book: it is counted in its :class:`~mdgw.core.arbiter.SourceStats` and logged
once per event. The book stops being live only when no source can continue it (a ``u`` no
source delivers, the last source lost), on a delta before any snapshot, or on a crossed
book. It then publishes ``status: resyncing``, asks one source that can serve the topic to
resubscribe it (at most once per ``resync_min_interval``; again after ``resync_timeout``
without a snapshot, each time the next source) and becomes live again on the next good
snapshot.

Conflation (``max_rate`` > 0, ``books.max_rate``; :mod:`mdgw.core.conflation`): a book
publishes at most ``max_rate`` times a second, the latest state wins; :meth:`Hub.publish_due`
(the shell calls it after each batch and when :attr:`Hub.next_due` comes) publishes what is
due. ``seq`` stays +1 per published message on every topic, and ``u`` only grows; it is no
longer +1 between two ``book`` messages. The first publish after a book is live again goes
out at once.

Where the rules live: this module has the envelope dispatch, the arbitrated book path,
the deadlines and the views metrics read; :class:`Hub` builds on
:class:`~mdgw.core.hub_sources.HubSources` (sources opening, losing frames, going), which
builds on :class:`~mdgw.core.single_source.SingleSourceBooks` (``orderbook.rpi``,
``orderbook.full``), which builds on :class:`~mdgw.core.hub_books.HubBooks` (the state and
the steps every path shares: publish, status, resync). Trades are
:class:`~mdgw.core.trade_feed.TradeFeed`'s, conflation :class:`~mdgw.core.conflation.Conflation`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple, cast

from mdgw.core import wire
from mdgw.core.arbiter import Source, Verdict
from mdgw.core.book import BookOutcome, OrderBook
from mdgw.core.bybit import (
    BookFrame,
    FullFrame,
    RpiFrame,
    StatusFrame,
    TradeFrame,
    decode_frame,
)
from mdgw.core.bybit_spec import FULL_TOPIC_PREFIX
from mdgw.core.errors import ParseError, UnsupportedTopicError, WireError
from mdgw.core.hub_books import resync_label
from mdgw.core.hub_sources import HubSources
from mdgw.core.hub_state import BookTopic, HubStats, State

__all__ = ["BookRow", "Hub", "HubStats", "State", "resync_label"]

# Ingestors send a heartbeat every second. After the raw socket reports a peer gone,
# an ingestor not heard from within this long of it is taken for the one that died.
_PEER_LOSS_GRACE = 1.6
# Books (and trade topics) are created per topic seen on the wire. Hostile input could name
# endless topics: past this many (Bybit lists about 1,200 spot/linear/inverse symbols, four
# depths each) new topics are counted and dropped, so memory stays bounded. Read when a
# hub is made.
MAX_TOPICS = 20_000
# A book whose next u one source skipped waits this long for another source to deliver it
# (a slower path is milliseconds behind), then resyncs.
HOLD_GRACE = 1.0
_DATA: Final = int(wire.EnvelopeKind.DATA)
_CONN_UP: Final = int(wire.EnvelopeKind.CONN_UP)
_CONN_DOWN: Final = int(wire.EnvelopeKind.CONN_DOWN)


# Enum members are slow to look up (a descriptor call each): the per-frame path uses these.
# Final: a compiled module keeps them in C statics, not in its globals dict.
_APPLY: Final = Verdict.APPLY
_APPLIED: Final = BookOutcome.APPLIED
_RESET: Final = BookOutcome.RESET


_NO_RESYNCS: dict[str, int] = {}  # shared by book_rows for books never resynced: never mutated


def _depth_label(book: BookTopic) -> int | str:
    """A book's ``depth`` in metrics and health: as configured (``"full"``), or ``"rpi"``."""
    if book.feed == "rpi":
        return "rpi"
    if book.bybit_topic.startswith(FULL_TOPIC_PREFIX):
        return "full"
    return book.order_book.max_depth


class BookRow(NamedTuple):
    """One book as metrics and health see it (a copy, taken on the hub's thread)."""

    category: str
    symbol: str
    depth: int | str  # "rpi" for an orderbook.rpi book, "full" for orderbook.full
    state: State
    since: float  # monotonic time the book entered its state (or was created)
    last_frame_at: float  # monotonic; 0.0 before the first frame
    u: int | None
    frames: int
    published: int
    resyncs: dict[str, int]  # resync_label -> episodes


class Hub(HubSources):
    """All books of one book builder, and the gateway sequence of every topic."""

    def __init__(
        self,
        *,
        publish_depth: int,
        resync_timeout: float,
        resync_min_interval: float,
        ingestor_timeout: float,
        stale_after: float,
        clock_ns: Callable[[], int],
        fused: Iterable[Sequence[str]] = (),
        max_rate: float = 0.0,
    ) -> None:
        super().__init__(clock_ns=clock_ns, fused=fused, max_rate=max_rate, max_topics=MAX_TOPICS)
        self.publish_depth = publish_depth
        self.resync_timeout = resync_timeout
        self.resync_min_interval = resync_min_interval
        self.ingestor_timeout = ingestor_timeout
        self.stale_after = stale_after
        self._peer_lost_at: float | None = None  # a raw-socket peer disconnected then
        # The source of the last DATA envelope: nearly every envelope comes from the same
        # connection as the one before, and a live source is always self._conns' entry for
        # its (ingestor, conn_id) (every removal from _conns marks it not alive), so checking
        # this one saves a key tuple and a dict lookup per frame.
        self._last_src: Source | None = None

    # ------------------------------------------------------------------ input

    def on_raw(self, msg: bytes, now: float) -> None:
        """One message from the raw socket; ``now`` is a monotonic time in seconds."""
        stats = self.stats
        stats.envelopes += 1
        try:
            kind, ingestor, category, conn_id, seq, recv_ns, frame = wire.decode_raw(msg)
        except WireError as exc:
            stats.bad_envelopes += 1
            self.events.append(("bad_envelope", {"reason": exc.reason, "size": len(msg)}))
            return
        ingestors = self._ingestors
        known = len(ingestors)
        ingestors[ingestor] = now  # one dict operation: a new ingestor grows the dict
        if len(ingestors) != known:
            self.events.append(("ingestor_seen", {"ingestor": ingestor}))
        if kind == _DATA:
            src = self._last_src
            if src is None or src.conn_id != conn_id or src.ingestor != ingestor or not src.alive:
                src = self._last_src = self._conns.get((ingestor, conn_id))
            if src is None:  # its CONN_UP was lost (or came before this builder started)
                src = self._last_src = self._new_source((ingestor, conn_id), f"{conn_id:#x}")
            else:
                last = src.seq
                if seq != last + 1 and seq != 1:
                    self._on_seq_hole(src, last, seq, now)
            src.seq = seq
            stats.frames += 1
            # The per-frame path, inlined (it runs for every Bybit frame).
            try:
                decoded = decode_frame(frame)
            except UnsupportedTopicError:
                stats.unsupported += 1
                return
            except ParseError as bad:  # not `exc`: mypyc types a name once per function
                self._on_malformed(category, src, bad, len(frame), now)
                return
            if type(decoded) is BookFrame:
                self._on_book(category, src, recv_ns, decoded, now)
            elif type(decoded) is TradeFrame:
                self._trades.on_frame(category, recv_ns, decoded)
            elif type(decoded) is RpiFrame:
                self._on_rpi(category, (ingestor, conn_id), recv_ns, decoded, now)
            elif type(decoded) is FullFrame:
                self._on_full(category, (ingestor, conn_id), recv_ns, decoded, now)
            else:
                assert isinstance(decoded, StatusFrame)
                self._on_system_status(recv_ns, decoded)
        elif kind == _CONN_UP:
            stats.conn_up += 1
            key = (ingestor, conn_id)
            old = self._conns.get(key)
            if old is not None:  # the same conn_id again: forget what it delivered before
                self._source_gone(old, "connection reopened", now)
            # The ingestor names the connection slot in the frame ("linear#0"), so the
            # counters of a slot add up across its reconnects.
            slot = frame[:64].decode("utf-8", "replace")
            if not slot or not slot.isprintable():
                slot = f"{conn_id:#x}"
            src = self._new_source(key, slot)
            self.events.append(
                (
                    "connection_up",
                    {
                        "ingestor": ingestor,
                        "category": category,
                        "conn_id": conn_id,
                        "source": src.name,
                    },
                )
            )
        elif kind == _CONN_DOWN:
            stats.conn_down += 1
            key = (ingestor, conn_id)
            src = self._conns.pop(key, None)
            self.events.append(
                (
                    "connection_down",
                    {
                        "ingestor": ingestor,
                        "category": category,
                        "conn_id": conn_id,
                        "source": None if src is None else src.name,
                    },
                )
            )
            if src is not None:
                self._source_gone(src, "connection closed", now)

    def on_peer_disconnected(self, now: float) -> None:
        """The raw socket lost a peer (an ingestor exited or was killed).

        The transport does not say which ingestor it was: the one whose heartbeat stops
        is found by :meth:`tick` within ``_PEER_LOSS_GRACE`` instead of ``ingestor_timeout``.
        """
        if self._peer_lost_at is None:
            self._peer_lost_at = now

    def on_control_subscriber(self, now: float) -> None:
        """An ingestor (re)joined the control socket: repeat every pending resync request.

        PUB/SUB drops what is sent before a subscriber has joined, so requests made
        while an ingestor (or this builder) was restarting may never have been heard.
        """
        for book in self._books.values():
            if book.state is State.RESYNCING:
                self._request(book, now, repeat=True)

    def on_inputs_lost(self, reason: str, now: float) -> None:
        """Inputs this hub should have had are gone (a hole in a replayed journal).

        Nothing the hub holds can be trusted to continue: every book resyncs (no request is
        sent: a replay has no ingestor to ask) and the connections' sequences start over.
        The live builder never calls this.
        """
        for src in self._conns.values():
            src.alive = False
            for arb in src.arbiters:
                arb.remove(src)
            src.arbiters.clear()
        self._conns.clear()
        for book in self._books.values():
            self._resync(book, reason, now, ask=False)

    def tick(self, now: float) -> None:
        """Deadlines: resync requests, silent ingestors, stale books."""
        lost_at = self._peer_lost_at
        if lost_at is not None and now - lost_at >= _PEER_LOSS_GRACE:
            self._peer_lost_at = None
        else:
            lost_at = None
        for ingestor, seen in list(self._ingestors.items()):
            silent = now - seen > self.ingestor_timeout
            if silent or (lost_at is not None and seen < lost_at + 0.3):
                del self._ingestors[ingestor]
                self.stats.ingestors_lost += 1
                self.events.append(
                    ("ingestor_lost", {"ingestor": ingestor, "silent_s": round(now - seen, 3)})
                )
                for key in [k for k in self._conns if k[0] == ingestor]:
                    self._source_gone(self._conns.pop(key), "ingestor silent", now)
        if self._holding:
            for book in list(self._holding):
                arb = book.arb
                since = arb.held_since
                if not arb.held or since is None:
                    self._holding.discard(book)
                elif now - since >= HOLD_GRACE:
                    self.stats.gaps += 1
                    self._resync(
                        book, f"u gap at u={(arb.last_u or 0) + 1}: no source delivered it", now
                    )
        for book in self._books.values():
            if book.state is State.RESYNCING:
                asked = book.requested_at
                if (
                    not book.episode_requested
                    and (asked is None or now - asked >= self.resync_min_interval)
                ) or (asked is not None and now - asked >= self.resync_timeout):
                    self._request(book, now)
            elif book.state is State.LIVE and now - book.last_frame_at > self.stale_after:
                book.state = State.STALE  # contents kept: the next delta may continue them
                book.since = now
                self._status(book, "stale", f"no frame for {self.stale_after:g}s", None)

    # --------------------------------------------------------------- snapshot

    def snapshot(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Current ``book`` and ``bbo`` messages of every live book matching ``prefix``."""
        items: list[tuple[bytes, bytes]] = []
        fused: set[int] = set()
        for book in self._books.values():
            if book.state is not State.LIVE:
                continue
            if book.last_book is not None and book.book_topic.startswith(prefix):
                items.append((book.book_topic, book.last_book))
            fusion = book.fusion
            if fusion is not None:
                if id(fusion) not in fused and fusion.last_bbo is not None:
                    fused.add(id(fusion))
                    if book.bbo_topic.startswith(prefix):
                        items.append((book.bbo_topic, fusion.last_bbo))
            elif book.last_bbo is not None and book.bbo_topic.startswith(prefix):
                items.append((book.bbo_topic, book.last_bbo))
        return items

    def book_rows(self) -> list[tuple[Any, ...]]:
        """Every book as a plain tuple in :class:`BookRow`'s field order (wrap it with
        ``BookRow._make`` where time does not matter): a copy, for the metrics endpoint,
        which reads it on another thread. Plain tuples because this runs on the event loop
        for every scrape: a NamedTuple's ``__new__`` is Python code, a tuple display is not.
        """
        return [
            (
                b.category,
                b.symbol,
                _depth_label(b),
                b.state,
                b.since,
                b.last_frame_at,
                b.order_book.last_u,
                b.frames,
                b.published,
                dict(b.resyncs) if b.resyncs else _NO_RESYNCS,
            )
            for b in self._books.values()
        ]

    def trade_frames(self) -> dict[str, int]:
        """Trade frames received, per category."""
        return self._trades.frames()

    def ingestors(self) -> dict[str, float]:
        """Ingestors heard from within ``ingestor_timeout``: id -> monotonic time last heard."""
        return dict(self._ingestors)

    def states(self) -> dict[str, int]:
        """How many books are in each state (for the stats line)."""
        counts = {s.value: 0 for s in State}
        for book in self._books.values():
            counts[book.state.value] += 1
        return counts

    # ------------------------------------------------------------ conflation

    @property
    def next_due(self) -> float | None:
        """When the earliest pending publish is due (monotonic s); None: nothing pending."""
        return self._conflation.next_due

    def publish_due(self, now: float) -> None:
        """Publish every pending book whose interval has passed (conflation; see above).

        Updates :attr:`next_due`.
        """
        for book, frame, recv_ns in self._conflation.due(now):
            self._publish(book, frame, False, recv_ns, now)  # live, and its interval has passed

    # --------------------------------------------------------------- frames

    def _on_book(
        self, category: str, src: Source, recv_ns: int, frame: BookFrame, now: float
    ) -> None:
        by_topic = self._topic_books.get(category)
        book = by_topic.get(frame.topic) if by_topic is not None else None
        if book is None:
            book = self._book_for(category, frame.topic, frame.symbol, frame.depth, now)
            if book is None:
                return
        book.last_frame_at = now
        book.frames += 1
        arb = book.arb
        verdict = arb.offer(src, frame, recv_ns, now)
        if verdict is _APPLY:  # _apply() inlined: this is the per-frame path
            # orderbook.{depth}: an OrderBook (mypyc checks the cast).
            outcome = cast(OrderBook, book.order_book).apply(frame)
            if outcome is _APPLIED or outcome is _RESET:
                self._publish(book, frame, frame.snapshot, recv_ns, now)
                if arb.held:
                    self._apply_held(book, now)
            else:
                self._broken(book, frame, outcome, recv_ns, now)
            return
        stats = self.stats
        if verdict is Verdict.DUPLICATE:
            stats.duplicates += 1
        elif verdict is Verdict.HELD:
            stats.held += 1
            self._holding.add(book)
        elif verdict is Verdict.OLDER:
            stats.older_snapshots += 1
        elif verdict is Verdict.NOT_SYNCED:
            stats.not_synced += 1
            self._resync(book, "delta before snapshot", now, recv_ns=recv_ns)
        else:
            stats.gaps += 1
            self._resync(book, f"u gap at u={frame.u}", now, recv_ns=recv_ns)

    def _apply(self, book: BookTopic, frame: BookFrame, recv_ns: int, now: float) -> bool:
        """Apply a frame the arbiter passed and publish (or defer); False if the book broke."""
        outcome = cast(OrderBook, book.order_book).apply(frame)
        if outcome is _APPLIED or outcome is _RESET:
            self._publish(book, frame, frame.snapshot, recv_ns, now)
            return True
        self._broken(book, frame, outcome, recv_ns, now)
        return False

    def _broken(
        self, book: BookTopic, frame: BookFrame, outcome: BookOutcome, recv_ns: int, now: float
    ) -> None:
        """Applying ``frame`` broke the book (crossed): resync it."""
        if outcome is BookOutcome.CROSSED:
            self.stats.crossed += 1
            reason = f"crossed book at u={frame.u}"
        else:  # the arbiter and the book disagree on u: a bug, but never publish it
            self.stats.gaps += 1
            reason = f"u {outcome.value} at u={frame.u}"
        self._resync(book, reason, now, recv_ns=recv_ns)

    def _apply_held(self, book: BookTopic, now: float) -> None:
        """Apply the held frames that now continue the book (another source filled the hole)."""
        arb = book.arb
        while True:
            item = arb.next_held()
            if item is None:
                break
            frame, recv_ns = item
            self.stats.filled += 1
            if not self._apply(book, frame, recv_ns, now):
                return
        if arb.held:
            arb.restart_wait(now)  # progress: the wait for the next hole starts now
        else:
            self._holding.discard(book)

    def _on_system_status(self, recv_ns: int, frame: StatusFrame) -> None:
        """Bybit's maintenance and incident notices: each version published once."""
        changed = self.notices.update(frame.notices)
        self.stats.notices_dup += len(frame.notices) - len(changed)
        for notice in changed:
            payload = self.notices.payload(
                notice, self._status_seq.next(), self._clock_ns(), recv_ns
            )
            self.outbox.append((wire.EXCHANGE_STATUS_TOPIC, payload))
            self.stats.notices_out += 1
            self.events.append(
                (
                    "system_status",
                    {"id": notice.id, "state": notice.state, "title": notice.title[:80]},
                )
            )

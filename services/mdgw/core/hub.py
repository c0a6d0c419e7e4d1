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

Conflation (``max_rate`` > 0, ``books.max_rate``): a book publishes at most ``max_rate``
times a second. Every frame is still applied and checked as it arrives; a frame that comes
less than ``1 / max_rate`` after the book's last publish only marks the book pending, and
:meth:`Hub.publish_due` (the shell calls it after each batch and when
:attr:`Hub.next_due` comes) publishes the book as it stands then, with the ``u``, ``ts``
and ``cts`` of the last frame applied: latest wins. ``seq`` stays +1 per published message
on every topic, and ``u`` only grows; it is no longer +1 between two ``book`` messages.
A book that stops being live drops what was pending; the first publish after it is live
again goes out at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, cast

from mdgw.core import wire
from mdgw.core.arbiter import Arbiter, Source, SourceStats, Verdict
from mdgw.core.bbo_fusion import BboFusion, join_symbol
from mdgw.core.book import BookOutcome, OrderBook
from mdgw.core.bybit import (
    BookFrame,
    FullFrame,
    OrderbookTopic,
    RpiFrame,
    StatusFrame,
    Trade,
    TradeFrame,
    decode_frame,
    parse_book_topic,
)
from mdgw.core.bybit_spec import FULL_TOPIC_PREFIX, RPI_DEPTH, RPI_TOPIC_PREFIX
from mdgw.core.errors import ParseError, UnsupportedTopicError, WireError
from mdgw.core.full_book import FullBook
from mdgw.core.hub_state import BookTopic, HubStats, SeqCounter, State, TradeTopic
from mdgw.core.rpi_book import RpiBook
from mdgw.core.system_status import NoticeBoard

__all__ = ["BookRow", "Hub", "HubStats", "State", "resync_label"]

Event = tuple[str, dict[str, Any]]
# Per symbol, to drop a trade seen twice (a replay after a reconnect). Small on purpose:
# memory is this times the number of symbols (1,200 symbols on Bybit).
_TRADE_IDS_KEPT = 256
_LATENCY_SAMPLES_MAX = 200_000  # per stats interval; beyond it samples are skipped
# Ingestors send a heartbeat every second. After the raw socket reports a peer gone,
# an ingestor not heard from within this long of it is taken for the one that died.
_PEER_LOSS_GRACE = 1.6
# Books (and trade topics) are created per topic seen on the wire. Hostile input could name
# endless topics: past this many (Bybit lists about 1,200 spot/linear/inverse symbols, four
# depths each) new topics are counted and dropped, so memory stays bounded.
MAX_TOPICS = 20_000
# After this many resubscribe requests without a snapshot, ask for a new connection.
_RECONNECT_AFTER_REQUESTS = 2
# A book whose next u one source skipped waits this long for another source to deliver it
# (a slower path is milliseconds behind), then resyncs.
HOLD_GRACE = 1.0
# Named sources (ingestor/connection) whose counters are kept; beyond it new names share one.
_MAX_SOURCE_NAMES = 1024
_DATA = int(wire.EnvelopeKind.DATA)
_CONN_UP = int(wire.EnvelopeKind.CONN_UP)
_CONN_DOWN = int(wire.EnvelopeKind.CONN_DOWN)


# Enum members are slow to look up (a descriptor call each): the per-frame path uses these.
_APPLY = Verdict.APPLY
_APPLIED = BookOutcome.APPLIED
_RESET = BookOutcome.RESET
_LIVE = State.LIVE


# Why a book resynced, as a bounded label for metrics (the log keeps the full reason).
_RESYNC_LABELS = (
    ("u gap", "gap"),
    ("u reset", "gap"),
    ("crossed", "crossed"),
    ("delta before snapshot", "not_synced"),
    ("waiting for the REST snapshot", "not_synced"),
    ("REST snapshot", "not_synced"),
    ("malformed", "malformed"),
    ("ingestor sequence hole", "seq_hole"),
    ("connection closed", "connection_closed"),
    ("ingestor silent", "ingestor_silent"),
)


def resync_label(reason: str) -> str:
    """The metrics label of a resync reason: one of a fixed few, never a number."""
    for prefix, label in _RESYNC_LABELS:
        if reason.startswith(prefix):
            return label
    return "other"


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


class Hub:
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
        if max_rate < 0:
            raise ValueError(f"max_rate must be >= 0, got {max_rate}")
        self.publish_depth = publish_depth
        # Seconds between two publishes of one book; 0.0: every frame is published.
        self.min_interval = 1.0 / max_rate if max_rate else 0.0
        # Books that may have a publish pending, by (category, Bybit topic).
        self._pending: dict[tuple[str, str], BookTopic] = {}
        self.next_due: float | None = None  # earliest pending publish (monotonic s)
        self.resync_timeout = resync_timeout
        self.resync_min_interval = resync_min_interval
        self.ingestor_timeout = ingestor_timeout
        self.stale_after = stale_after
        self._clock_ns = clock_ns
        self.outbox: list[tuple[bytes, bytes]] = []
        self.control: list[list[bytes]] = []
        self.events: list[Event] = []
        self.latencies: list[int] = []  # pub_ns - recv_ns of book messages, this interval
        self.stats = HubStats()
        self._books: dict[tuple[str, str], BookTopic] = {}
        self._trades: dict[tuple[str, str], TradeTopic] = {}
        self._seq: dict[bytes, SeqCounter] = {}  # gateway topic -> its counter
        self._conns: dict[tuple[str, int], Source] = {}  # (ingestor, conn_id) -> its source
        self._source_stats: dict[str, SourceStats] = {}  # by source name, across reconnects
        self._holding: set[BookTopic] = set()  # books with held frames (Arbiter.held)
        self._ingestors: dict[str, float] = {}  # -> last time anything arrived
        self._peer_lost_at: float | None = None  # a raw-socket peer disconnected then
        # (category, symbol) whose bbo fuses depth 1 with a deeper depth (from the config;
        # a symbol seen on both without being configured so is fused when it happens).
        self._fusions: dict[tuple[str, str], BboFusion] = {
            (key[0], key[1]): BboFusion() for key in fused
        }
        self._symbol_books: dict[tuple[str, str], list[BookTopic]] = {}
        self.notices = NoticeBoard()
        self._status_seq = self._counter(wire.EXCHANGE_STATUS_TOPIC)

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
        if ingestor not in ingestors:
            self.events.append(("ingestor_seen", {"ingestor": ingestor}))
        ingestors[ingestor] = now
        key = (ingestor, conn_id)
        if kind == _DATA:
            src = self._conns.get(key)
            if src is None:  # its CONN_UP was lost (or came before this builder started)
                src = self._new_source(key, f"{conn_id:#x}")
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
                self._on_trades(category, recv_ns, decoded)
            elif type(decoded) is RpiFrame:
                self._on_rpi(category, key, recv_ns, decoded, now)
            elif type(decoded) is FullFrame:
                self._on_full(category, key, recv_ns, decoded, now)
            else:
                assert isinstance(decoded, StatusFrame)
                self._on_system_status(recv_ns, decoded)
        elif kind == _CONN_UP:
            stats.conn_up += 1
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
        counts: dict[str, int] = {}
        for (category, _), trades in self._trades.items():
            counts[category] = counts.get(category, 0) + trades.frames
        return counts

    def ingestors(self) -> dict[str, float]:
        """Ingestors heard from within ``ingestor_timeout``: id -> monotonic time last heard."""
        return dict(self._ingestors)

    def states(self) -> dict[str, int]:
        """How many books are in each state (for the stats line)."""
        counts = {s.value: 0 for s in State}
        for book in self._books.values():
            counts[book.state.value] += 1
        return counts

    # --------------------------------------------------------------- frames

    def _on_book(
        self, category: str, src: Source, recv_ns: int, frame: BookFrame, now: float
    ) -> None:
        book = self._books.get((category, frame.topic))
        if book is None:
            if len(self._books) >= MAX_TOPICS:
                self.stats.topics_refused += 1
                return
            book = self._new_book(category, frame.topic, frame.symbol, frame.depth, now)
        book.last_frame_at = now
        book.frames += 1
        arb = book.arb
        verdict = arb.offer(src, frame, recv_ns, now)
        stats = self.stats
        if verdict is _APPLY:  # _apply() inlined: this is the per-frame path
            # orderbook.{depth}: an OrderBook (mypyc checks the cast).
            outcome = cast(OrderBook, book.order_book).apply(frame)
            if outcome is _APPLIED or outcome is _RESET:
                if book.state is not _LIVE:
                    book.state = _LIVE
                    book.since = now
                    book.episode_requested = False
                    self._status(book, "live", "snapshot" if frame.snapshot else "updates", recv_ns)
                elif self.min_interval and now < book.next_publish_at:
                    self._defer(book, frame, recv_ns)
                    if arb.held:
                        self._apply_held(book, now)
                    return
                self._publish_book(book, frame, recv_ns)
                if self.min_interval:
                    book.next_publish_at = now + self.min_interval
                    book.pending = None
                if arb.held:
                    self._apply_held(book, now)
            else:
                self._broken(book, frame, outcome, recv_ns, now)
            return
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

    def _on_rpi(
        self, category: str, source: tuple[str, int], recv_ns: int, frame: RpiFrame, now: float
    ) -> None:
        """``orderbook.rpi``: single-source (not arbitrated). The book takes deltas only from
        the connection that delivered its snapshot; a delta from another connection
        invalidates it (a stream with ``connections`` > 1 subscribes RPI books once)."""
        book = self._books.get((category, frame.topic))
        if book is None:
            if len(self._books) >= MAX_TOPICS:
                self.stats.topics_refused += 1
                return
            book = self._new_book(category, frame.topic, frame.symbol, frame.depth, now)
        book.ingestor = source[0]
        book.last_frame_at = now
        book.frames += 1
        if frame.snapshot or book.source == source:
            # The topic names the kind: an RpiFrame only reaches an RpiBook (mypyc checks).
            outcome = cast(RpiBook, book.order_book).apply(frame)
        else:
            # A delta from a connection that did not deliver this book's snapshot:
            # it cannot continue our sequence (Bybit's u is per connection stream).
            book.order_book.invalidate()
            outcome = BookOutcome.NOT_SYNCED
        if outcome is BookOutcome.APPLIED or outcome is BookOutcome.RESET:
            if frame.snapshot:
                book.source = source
            if book.state is not State.LIVE:
                book.state = State.LIVE
                book.since = now
                book.episode_requested = False
                self._status(book, "live", "snapshot" if frame.snapshot else "updates", recv_ns)
            elif self.min_interval and now < book.next_publish_at:
                self._defer(book, frame, recv_ns)
                return
            self._publish_book(book, frame, recv_ns)
            if self.min_interval:
                book.next_publish_at = now + self.min_interval
                book.pending = None
            return
        stats = self.stats
        if outcome is BookOutcome.DUPLICATE:
            stats.duplicates += 1
            return
        if outcome is BookOutcome.GAP:
            stats.gaps += 1
            reason = f"u gap at u={frame.u}"
        elif outcome is BookOutcome.CROSSED:
            stats.crossed += 1
            reason = f"crossed book at u={frame.u}"
        else:
            stats.not_synced += 1
            reason = "delta before snapshot"
        self._resync(book, reason, now, recv_ns=recv_ns)

    def _apply(self, book: BookTopic, frame: BookFrame, recv_ns: int, now: float) -> bool:
        """Apply a frame the arbiter passed and publish (or defer); False if the book broke."""
        outcome = cast(OrderBook, book.order_book).apply(frame)
        if outcome is _APPLIED or outcome is _RESET:
            if book.state is not _LIVE:
                book.state = _LIVE
                book.since = now
                book.episode_requested = False
                self._status(book, "live", "snapshot" if frame.snapshot else "updates", recv_ns)
            elif self.min_interval and now < book.next_publish_at:
                self._defer(book, frame, recv_ns)
                return True
            self._publish_book(book, frame, recv_ns)
            if self.min_interval:
                book.next_publish_at = now + self.min_interval
                book.pending = None
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

    def _on_full(
        self, category: str, source: tuple[str, int], recv_ns: int, frame: FullFrame, now: float
    ) -> None:
        """``orderbook.full``: deltas are buffered until the REST snapshot the ingestor
        fetches (asked for with a resync request) fits them (:mod:`mdgw.core.full_book`)."""
        book = self._books.get((category, frame.topic))
        if book is None:
            if len(self._books) >= MAX_TOPICS:
                self.stats.topics_refused += 1
                return
            book = self._new_book(category, frame.topic, frame.symbol, frame.depth, now)
        book.ingestor = source[0]
        book.last_frame_at = now
        book.frames += 1
        full = cast(FullBook, book.order_book)
        if book.source != source:
            # Deltas and the snapshot of one sync come over one connection; another
            # connection starts the sync over.
            if book.source is not None:
                full.invalidate()
            book.source = source
        outcome = full.apply(frame)
        if outcome is BookOutcome.APPLIED or outcome is BookOutcome.RESET:
            shown = full.last_frame or frame
            if book.state is not State.LIVE:
                book.state = State.LIVE
                book.since = now
                book.episode_requested = False
                self._status(book, "live", "snapshot" if frame.snapshot else "updates", recv_ns)
            elif self.min_interval and now < book.next_publish_at:
                self._defer(book, shown, recv_ns)
                return
            self._publish_book(book, shown, recv_ns)
            if self.min_interval:
                book.next_publish_at = now + self.min_interval
                book.pending = None
            return
        stats = self.stats
        if outcome is BookOutcome.DUPLICATE:
            stats.duplicates += 1
            return
        if outcome is BookOutcome.GAP:
            stats.gaps += 1
            reason = "u reset to 1" if frame.u == 1 else f"u gap at u={frame.u}"
        elif outcome is BookOutcome.CROSSED:
            stats.crossed += 1
            reason = f"crossed book at u={frame.u}"
        elif frame.snapshot:
            stats.not_synced += 1
            reason = "REST snapshot does not fit the buffered deltas"
        else:
            reason = "waiting for the REST snapshot"
        # The buffer is the sync in progress: keep it (invalidate=False), ask for a snapshot.
        self._resync(book, reason, now, recv_ns=recv_ns, invalidate=False, keep_source=True)
        if frame.snapshot and full.wants_snapshot:
            book.episode_requested = False  # a snapshot that does not fit: fetch another

    def _defer(self, book: BookTopic, frame: BookFrame | RpiFrame, recv_ns: int) -> None:
        if book.pending is None:
            self._pending[(book.category, book.bybit_topic)] = book
            due = book.next_publish_at
            if self.next_due is None or due < self.next_due:
                self.next_due = due
        book.pending = frame
        book.pending_recv_ns = recv_ns

    def publish_due(self, now: float) -> None:
        """Publish every pending book whose interval has passed (conflation; see above).

        Updates :attr:`next_due`: the time of the earliest publish still pending, or None.
        """
        if self.next_due is None or now < self.next_due:
            return
        interval = self.min_interval
        waiting: dict[tuple[str, str], BookTopic] = {}
        next_due: float | None = None
        for key, book in self._pending.items():
            frame = book.pending
            if frame is None or book.state is not State.LIVE:
                book.pending = None
                continue
            if now < book.next_publish_at:
                waiting[key] = book
                if next_due is None or book.next_publish_at < next_due:
                    next_due = book.next_publish_at
                continue
            book.pending = None
            self._publish_book(book, frame, book.pending_recv_ns)
            book.next_publish_at = now + interval
        self._pending = waiting
        self.next_due = next_due

    def _on_trades(self, category: str, recv_ns: int, frame: TradeFrame) -> None:
        if frame.trades and frame.trades[0].symbol not in ("", frame.symbol):
            # Options: one frame per base coin, trades of many instruments. Each instrument
            # gets its own trade topic, in the frame's order.
            by_symbol: dict[str, list[Trade]] = {}
            for one in frame.trades:
                by_symbol.setdefault(one.symbol or frame.symbol, []).append(one)
            for symbol, batch in by_symbol.items():
                self._on_trades(category, recv_ns, TradeFrame(frame.topic, symbol, frame.ts, batch))
            return
        key = (category, frame.symbol)
        trades = self._trades.get(key)
        if trades is None:
            if len(self._trades) >= MAX_TOPICS:
                self.stats.topics_refused += 1
                return
            topic = wire.topic("trade", category, frame.symbol)
            trades = self._trades[key] = TradeTopic(topic, self._counter(topic))
        trades.frames += 1
        topic = trades.topic
        seen = trades.seen
        order = trades.order
        counter = trades.seq
        seq = counter.last
        last_seq = trades.last_seq
        for trade in frame.trades:
            # Bybit splits a batch of more than 1,024 trades over several messages with the
            # same seq, so an equal seq is no duplicate; the id decides. A smaller seq is a
            # replay (seq is the engine's, monotonic), even when its id has left `seen`.
            bybit_seq = trade.seq
            if bybit_seq and bybit_seq < last_seq:
                self.stats.trades_stale += 1
                continue
            if trade.id in seen:
                self.stats.trades_dup += 1
                continue
            if bybit_seq:
                last_seq = bybit_seq
            seen.add(trade.id)
            order.append(trade.id)
            if len(order) > _TRADE_IDS_KEPT:
                seen.discard(order.popleft())
            seq += 1
            self.outbox.append(
                (
                    topic,
                    wire.encode_trade(
                        category,
                        frame.symbol,
                        seq=seq,
                        pub_ns=self._clock_ns(),
                        recv_ns=recv_ns,
                        trade_id=trade.id,
                        price=trade.price,
                        size=trade.size,
                        side=trade.side,
                        ts=trade.ts,
                        block=trade.block,
                        bybit_seq=bybit_seq,
                        rpi=trade.rpi,
                        option=trade.option,
                    ),
                )
            )
            self.stats.trades_out += 1
        counter.last = seq
        trades.last_seq = last_seq

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

    def _on_malformed(
        self, category: str, src: Source, exc: ParseError, size: int, now: float
    ) -> None:
        self.stats.malformed += 1
        topic = exc.topic
        self.events.append(
            (
                "malformed_frame",
                {
                    "category": category,
                    "topic": topic,
                    "reason": exc.reason,
                    "size": size,
                    "ingestor": src.ingestor,
                    "conn_id": src.conn_id,
                    "source": src.name,
                },
            )
        )
        if topic is None or not topic.startswith("orderbook."):
            return
        book = self._books.get((category, topic))
        if book is None:
            parsed: OrderbookTopic | None
            if topic.startswith(RPI_TOPIC_PREFIX):
                symbol = topic[len(RPI_TOPIC_PREFIX) :]
                parsed = OrderbookTopic(symbol, RPI_DEPTH) if wire.is_topic_symbol(symbol) else None
            else:
                parsed = parse_book_topic(topic)
            if parsed is None or len(self._books) >= MAX_TOPICS:
                return
            book = self._new_book(category, topic, parsed.symbol, parsed.depth, now)
        # The frame is lost: that source cannot continue this book until its next frame.
        book.arb.mark_lost(src)
        if book.arb.synced and book.arb.can_continue():
            src.stats.failovers += 1
            self.stats.failovers += 1
            return
        self._resync(book, "malformed frame", now)

    def _on_seq_hole(self, src: Source, last: int, seq: int, now: float) -> None:
        self.stats.seq_holes += 1
        src.stats.seq_holes += 1
        lost = seq - last - 1 if seq > last else 0
        self.stats.frames_lost += lost
        # We cannot know which topics the lost frames belonged to: every book fed by this
        # source may have missed a delta. It resyncs unless another source can continue it.
        kept = resynced = 0
        for arb in src.arbiters:
            arb.mark_lost(src)
            if not arb.synced:
                continue
            if arb.can_continue():
                kept += 1
                continue
            resynced += 1
            self._resync(self._books[arb.key], "ingestor sequence hole", now)
        key = (src.ingestor, src.conn_id)
        for book in self._books.values():
            if book.source == key:  # single-source (rpi, full): this connection fed it
                resynced += 1
                self._resync(book, "ingestor sequence hole", now)
        if kept:
            src.stats.failovers += 1
            self.stats.failovers += kept
        self.events.append(
            (
                "sequence_hole",
                {
                    "ingestor": src.ingestor,
                    "conn_id": src.conn_id,
                    "source": src.name,
                    "expected": last + 1,
                    "got": seq,
                    "books_kept": kept,
                    "books_resynced": resynced,
                },
            )
        )

    # --------------------------------------------------------------- sources

    def _new_source(self, key: tuple[str, int], slot: str) -> Source:
        name = f"{key[0]}/{slot}"
        stats = self._source_stats.get(name)
        if stats is None:
            if len(self._source_stats) >= _MAX_SOURCE_NAMES:
                name = f"{key[0]}/other"
                stats = self._source_stats.setdefault(name, SourceStats())
            else:
                stats = self._source_stats[name] = SourceStats()
        src = Source(key[0], key[1], name, stats)
        self._conns[key] = src
        return src

    def _source_gone(self, src: Source, reason: str, now: float) -> None:
        """A source's connection closed or its ingestor died: its books go on without it."""
        src.alive = False
        kept = 0
        for arb in src.arbiters:
            arb.remove(src)
            if not arb.synced:
                continue
            if arb.can_continue():
                kept += 1
                continue
            # Its ingestor reconnects and resubscribes by itself (or another ingestor
            # serves the topic): ask only if no snapshot comes within resync_timeout.
            self._resync(self._books[arb.key], reason, now, ask=False)
        key = (src.ingestor, src.conn_id)
        for book in self._books.values():
            if book.source == key and book.state is not State.RESYNCING:
                # A single-source book (rpi, full) this connection fed.
                self._resync(book, reason, now, ask=False)
        if kept:
            src.stats.failovers += 1
            self.stats.failovers += kept
            self.events.append(
                ("source_failover", {"source": src.name, "reason": reason, "books_kept": kept})
            )
        src.arbiters.clear()

    def source_stats(self) -> dict[str, SourceStats]:
        """Counters per named source (``ingestor/slot``), kept across reconnects.

        The stats line reports them; a metrics exporter may read them too (they only grow,
        except ``lag_ns_max``, which :meth:`reset_lag_max` clears).
        """
        return self._source_stats

    def live_sources(self) -> dict[str, int]:
        """How many open connections each source name has now."""
        counts: dict[str, int] = {}
        for src in self._conns.values():
            counts[src.name] = counts.get(src.name, 0) + 1
        return counts

    def reset_lag_max(self) -> None:
        for stats in self._source_stats.values():
            stats.lag_ns_max = 0

    # ---------------------------------------------------------------- output

    def _new_book(
        self, category: str, topic: str, symbol: str, depth: int, now: float
    ) -> BookTopic:
        full = topic.startswith(FULL_TOPIC_PREFIX)
        rpi = topic.startswith(RPI_TOPIC_PREFIX)
        channel = "rpi" if rpi else "book"
        book_topic = wire.topic(channel, category, symbol)
        bbo_topic = wire.topic("bbo", category, symbol)
        status_topic = wire.topic("status", category, symbol)
        order_book: OrderBook | RpiBook | FullBook
        if full:
            order_book = FullBook()
        elif rpi:
            order_book = RpiBook(depth)
        else:
            order_book = OrderBook(depth)
        book = BookTopic(
            category=category,
            symbol=symbol,
            bybit_topic=topic,
            order_book=order_book,
            publish_depth=self.publish_depth if full else min(self.publish_depth, depth),
            book_topic=book_topic,
            bbo_topic=bbo_topic,
            status_topic=status_topic,
            book_template=wire.BookTemplate(category, symbol, channel, full=full),
            book_seq=self._counter(book_topic),
            bbo_seq=self._counter(bbo_topic),
            status_seq=self._counter(status_topic),
            arb=Arbiter((category, topic), self.events),
            feed=channel,
            since=now,
        )
        self._books[(category, topic)] = book
        if not rpi and not full:
            siblings = self._symbol_books.setdefault((category, symbol), [])
            join_symbol(book, siblings, self._fusions)
        return book

    def _counter(self, topic: bytes) -> SeqCounter:
        """The seq counter of a gateway topic (one per topic, shared by all its records)."""
        counter = self._seq.get(topic)
        if counter is None:
            counter = self._seq[topic] = SeqCounter()
        return counter

    def _publish_book(self, book: BookTopic, frame: BookFrame | RpiFrame, recv_ns: int) -> None:
        ob = book.order_book
        pub_ns = self._clock_ns()
        if book.feed != "bbo":
            depth = book.publish_depth
            seq = book.book_seq.next()
            bids, asks = ob.top_json(depth)
            payload = book.book_template.render(
                seq, pub_ns, recv_ns, frame.u, frame.ts, frame.cts, depth, bids, asks
            )
            self.outbox.append((book.book_topic, payload))
            book.last_book = payload
            book.published += 1
            self.stats.books_out += 1
            if len(self.latencies) < _LATENCY_SAMPLES_MAX:
                self.latencies.append(pub_ns - recv_ns)
            if book.feed == "rpi":
                return  # the bbo is the ordinary book's: RPI size is not on it
        best = ob.best_json()
        fusion = book.fusion
        if fusion is not None:
            if not fusion.offer(frame.seq, best):
                return
        elif best == book.last_best:
            return
        book.last_best = best
        # An RPI book returned above: an ordinary or a full book (mypyc checks the cast).
        deep = cast(OrderBook | FullBook, ob)
        bid, ask = deep.best_bid(), deep.best_ask()
        bbo = wire.encode_bbo(
            book.category,
            book.symbol,
            seq=book.bbo_seq.next(),
            pub_ns=pub_ns,
            recv_ns=recv_ns,
            u=frame.u,
            ts=frame.ts,
            bid=bid[0] if bid else None,
            bid_size=bid[1] if bid else None,
            ask=ask[0] if ask else None,
            ask_size=ask[1] if ask else None,
            bybit_seq=frame.seq,
            depth="full" if type(frame) is FullFrame else frame.depth,
        )
        self.outbox.append((book.bbo_topic, bbo))
        if fusion is not None:
            fusion.last_bbo = bbo
        else:
            book.last_bbo = bbo
        self.stats.bbo_out += 1

    def _status(self, book: BookTopic, state: str, reason: str, recv_ns: int | None) -> None:
        payload = wire.encode_status(
            book.category,
            book.symbol,
            seq=book.status_seq.next(),
            pub_ns=self._clock_ns(),
            state=state,
            reason=reason,
            recv_ns=recv_ns,
            feed=book.feed,
        )
        self.outbox.append((book.status_topic, payload))
        self.stats.status_out += 1
        self.events.append(
            (
                f"book_{state}",
                {
                    "category": book.category,
                    "symbol": book.symbol,
                    "topic": book.bybit_topic,
                    "reason": reason,
                    "u": book.order_book.last_u,
                },
            )
        )

    def _resync(
        self,
        book: BookTopic,
        reason: str,
        now: float,
        *,
        ask: bool = True,
        recv_ns: int | None = None,
        invalidate: bool = True,
        keep_source: bool = False,
    ) -> None:
        if invalidate:
            book.order_book.invalidate()
        if not keep_source:
            book.source = None
        book.arb.desync()
        self._holding.discard(book)
        book.last_book = book.last_bbo = None
        book.last_best = None
        fusion = book.fusion
        if fusion is not None:
            self.stats.bbo_older += fusion.older
            fusion.older = 0
        book.pending = None
        if book.state is not State.RESYNCING:
            book.state = State.RESYNCING
            book.since = now
            book.reason = reason
            label = resync_label(reason)
            book.resyncs[label] = book.resyncs.get(label, 0) + 1
            book.episode_requested = False
            book.episode_requests = 0
            self.stats.resyncs += 1
            self._status(book, "resyncing", reason, recv_ns)
            if not ask:
                # Give the ingestor resync_timeout to bring a snapshot by itself.
                book.requested_at = now
                book.episode_requested = True
        if ask and not book.episode_requested:
            asked = book.requested_at
            if asked is None or now - asked >= self.resync_min_interval:
                self._request(book, now)

    def _request(self, book: BookTopic, now: float, *, repeat: bool = False) -> None:
        book.requested_at = now
        book.episode_requested = True
        if not repeat:  # a repeat for a new listener is not a failed attempt
            book.episode_requests += 1
        self.stats.resync_requests += 1
        # Resubscribing is the gentle way; when it has not brought a snapshot twice in
        # a row, the connection itself is suspect: ask for a new one.
        reconnect = book.episode_requests > _RECONNECT_AFTER_REQUESTS
        if reconnect:
            self.stats.reconnect_requests += 1
        if book.episode_requests >= 2:
            # The first request brought no snapshot we could take: if Bybit restarted
            # and we missed its u = 1, only snapshots below the floor will ever come.
            book.arb.forget_floor()
        ingestor, conn_id = self._resync_target(book)
        self.control.append(
            wire.encode_resync(
                book.category,
                book.bybit_topic,
                book.reason,
                reconnect=reconnect,
                ingestor=ingestor,
                conn_id=conn_id,
            )
        )

    def _resync_target(self, book: BookTopic) -> tuple[str, int]:
        """Who should resubscribe: one source that serves the topic, not every ingestor.

        Its live sources first (the one most often first leads), in turn from one request of
        an episode to the next; else an ingestor alive that served it before (``conn_id``
        0: whichever of its connections holds the topic); else everyone (``""``).
        """
        turn = max(0, book.episode_requests - 1)
        sources = book.arb.sources()
        if sources:
            src = sources[turn % len(sources)]
            return src.ingestor, src.conn_id
        alive = sorted(i for i in book.arb.ingestors if i in self._ingestors)
        if alive:
            return alive[turn % len(alive)], 0
        # Single-source books (rpi, full) are not arbitrated: the connection that fed the
        # sync in progress, else the ingestor that sent the last frame.
        if book.source is not None:
            return book.source
        if book.ingestor in self._ingestors:
            return book.ingestor, 0
        return "", 0

"""What every path of the hub does to a book: create it, publish it, report its state, resync it.

:class:`HubBooks` holds the hub's state (books, trade topics, sources, seq counters, the
outbox) and the steps the frame paths share; the paths themselves are in the classes built
on it (:mod:`mdgw.core.single_source`, :mod:`mdgw.core.hub_sources`, :mod:`mdgw.core.hub`).
The rules are the hub's (see :mod:`mdgw.core.hub`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, cast

from mdgw.core import wire
from mdgw.core.arbiter import Arbiter, Source, SourceStats
from mdgw.core.bbo_fusion import BboFusion, join_symbol
from mdgw.core.book import OrderBook
from mdgw.core.bybit import BookFrame, FullFrame, RpiFrame
from mdgw.core.bybit_spec import FULL_TOPIC_PREFIX, RPI_TOPIC_PREFIX
from mdgw.core.conflation import Conflation
from mdgw.core.full_book import FullBook
from mdgw.core.hub_state import BookTopic, HubStats, SeqCounter, State
from mdgw.core.rpi_book import RpiBook
from mdgw.core.system_status import NoticeBoard
from mdgw.core.trade_feed import TradeFeed
from mdgw.core.wire.topics import RENDERS_IN_C

__all__ = ["Event", "HubBooks", "resync_label"]

Event = tuple[str, dict[str, Any]]
_LATENCY_SAMPLES_MAX: Final = 200_000  # per stats interval; beyond it samples are skipped
# After this many resubscribe requests without a snapshot, ask for a new connection.
_RECONNECT_AFTER_REQUESTS = 2

# Enum members are slow to look up (a descriptor call each): the per-frame path uses this.
# Final: a compiled module keeps it in a C static, not in its globals dict.
_LIVE: Final = State.LIVE
# The compiled build writes the book and bbo payloads in C from the ints and the book's level
# texts (wire.topics.RENDERS_IN_C); the pure-Python build renders the stamp and the joins once.
_IN_C: Final = RENDERS_IN_C

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


class HubBooks:
    """The hub's state, and the steps its frame paths share."""

    # The rules' settings: set by Hub.__init__, whose signature documents them.
    publish_depth: int
    resync_timeout: float
    resync_min_interval: float
    ingestor_timeout: float
    stale_after: float

    def __init__(
        self,
        *,
        clock_ns: Callable[[], int],
        fused: Iterable[Sequence[str]],
        max_rate: float,
        max_topics: int,
    ) -> None:
        self._conflation = Conflation(max_rate)
        self.min_interval = self._conflation.min_interval  # read per frame: kept at hand
        self._clock_ns = clock_ns
        self._max_topics = max_topics  # books, and trade topics, each
        self.outbox: list[tuple[bytes, bytes]] = []
        self.control: list[list[bytes]] = []
        self.events: list[Event] = []
        self.latencies: list[int] = []  # pub_ns - recv_ns of book messages, this interval
        self.stats = HubStats()
        self._books: dict[tuple[str, str], BookTopic] = {}
        # The same books by category, then Bybit topic: Hub._on_book's lookup a frame, two
        # str keys whose hashes the str caches, where the pair needs a tuple made, hashed and
        # compared. Written beside _books in _new_book, the one place books are added.
        self._topic_books: dict[str, dict[str, BookTopic]] = {}
        self._seq: dict[bytes, SeqCounter] = {}  # gateway topic -> its counter
        self._trades = TradeFeed(
            outbox=self.outbox,
            stats=self.stats,
            clock_ns=clock_ns,
            counter=self._counter,
            max_topics=max_topics,
        )
        self._conns: dict[tuple[str, int], Source] = {}  # (ingestor, conn_id) -> its source
        self._source_stats: dict[str, SourceStats] = {}  # by source name, across reconnects
        self._holding: set[BookTopic] = set()  # books with held frames (Arbiter.held)
        self._ingestors: dict[str, float] = {}  # -> last time anything arrived
        # (category, symbol) whose bbo fuses depth 1 with a deeper depth (from the config;
        # a symbol seen on both without being configured so is fused when it happens).
        self._fusions: dict[tuple[str, str], BboFusion] = {
            (key[0], key[1]): BboFusion() for key in fused
        }
        self._symbol_books: dict[tuple[str, str], list[BookTopic]] = {}
        self.notices = NoticeBoard()
        self._status_seq = self._counter(wire.EXCHANGE_STATUS_TOPIC)

    def _book_for(
        self, category: str, topic: str, symbol: str, depth: int, now: float
    ) -> BookTopic | None:
        """The book of a Bybit topic, created on its first frame; None past the topic cap."""
        book = self._books.get((category, topic))
        if book is None:
            if len(self._books) >= self._max_topics:
                self.stats.topics_refused += 1
                return None
            book = self._new_book(category, topic, symbol, depth, now)
        return book

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
            bbo_template=wire.BboTemplate(category, symbol),
            book_seq=self._counter(book_topic),
            bbo_seq=self._counter(bbo_topic),
            status_seq=self._counter(status_topic),
            arb=Arbiter((category, topic), self.events),
            feed=channel,
            since=now,
        )
        self._books[(category, topic)] = book
        self._topic_books.setdefault(category, {})[topic] = book
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

    def _publish(
        self,
        book: BookTopic,
        frame: BookFrame | RpiFrame,
        snapshot: bool,
        recv_ns: int,
        now: float,
    ) -> None:
        """The book took a frame (applied, or reset by a snapshot): go live, then publish its
        ``book`` (and ``bbo`` when the best changed) with ``frame``'s ``u``, ``ts`` and
        ``cts``, or defer that (conflation). A conflated publish that is due comes here too.

        One method, not a publish called from here: this is every frame's path."""
        interval = self.min_interval
        if book.state is not _LIVE:
            book.state = _LIVE
            book.since = now
            book.episode_requested = False
            self._status(book, "live", "snapshot" if snapshot else "updates", recv_ns)
        elif interval and now < book.next_publish_at:
            self._conflation.defer(book, frame, recv_ns)
            return
        if interval:
            book.next_publish_at = now + interval
            book.pending = None
        ob = book.order_book
        pub_ns = self._clock_ns()
        if _IN_C and book.feed == "book":
            self._publish_book_bbo(book, frame, recv_ns, pub_ns)
            return
        # Without C: pub_ns, recv_ns, u and ts as text once for the book and the bbo, the
        # text of wire.topics.stamp() inlined (a call costs more than the f-string in pure
        # Python). The C code writes them into each payload itself, faster than any str.
        stamped = "" if _IN_C else f'{pub_ns},"recv_ns":{recv_ns},"u":{frame.u},"ts":{frame.ts}'
        if book.feed != "bbo":
            depth = book.publish_depth
            seq = book.book_seq.next()
            if _IN_C:
                bid_texts, ask_texts = ob.level_texts()
                # An RPI frame (an ordinary or full book's went to _publish_book_bbo).
                ints = (frame.u, frame.seq, frame.ts, frame.cts)
                payload = book.book_template.render_texts(
                    seq, pub_ns, recv_ns, ints, depth, bid_texts, ask_texts
                )
            else:
                bids, asks = ob.top_json(depth)
                payload = book.book_template.render_stamped(
                    seq, stamped, frame.cts, depth, bids, asks
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
        depth_of = "full" if type(frame) is FullFrame else frame.depth
        if _IN_C:
            bbo = book.bbo_template.render(
                book.bbo_seq.next(),
                pub_ns,
                recv_ns,
                frame.u,
                frame.ts,
                deep.best_bid(),
                deep.best_ask(),
                frame.seq,
                depth_of,
            )
        else:
            bbo = book.bbo_template.render_stamped(
                book.bbo_seq.next(), stamped, deep.best_bid(), deep.best_ask(), frame.seq, depth_of
            )
        self.outbox.append((book.bbo_topic, bbo))
        if fusion is not None:
            fusion.last_bbo = bbo
        else:
            book.last_bbo = bbo
        self.stats.bbo_out += 1

    def _publish_book_bbo(
        self, book: BookTopic, frame: BookFrame | RpiFrame, recv_ns: int, pub_ns: int
    ) -> None:
        """:meth:`_publish`'s book and bbo of an ordinary or full book in the compiled build:
        whether the bbo is due is known before either payload is written, so that a frame
        that publishes both (on ``orderbook.1``, nearly every one) writes them in one C call
        (:meth:`mdgw.core.wire.BookTemplate.render_with_bbo`). Same payloads, same order,
        same seqs as the two steps of :meth:`_publish`."""
        ob = book.order_book
        depth = book.publish_depth
        seq = book.book_seq.next()
        bid_texts, ask_texts = ob.level_texts()
        # ob.best_json(), from the lists already in hand.
        best = (bid_texts[0] if bid_texts else None), (ask_texts[0] if ask_texts else None)
        fusion = book.fusion
        bbo_due = fusion.offer(frame.seq, best) if fusion is not None else best != book.last_best
        bbo: bytes | None = None
        # The frame's four ints as the decode boxed them (BookFrame.ints); a frame msgspec
        # decoded has none, and they are boxed here.
        ints = cast(BookFrame, frame).ints  # feed "book": never an RPI frame
        if ints is None:
            ints = (frame.u, frame.seq, frame.ts, frame.cts)
        if bbo_due:
            book.last_best = best
            deep = cast(OrderBook | FullBook, ob)  # feed "book": never an RPI book
            depth_of = "full" if type(frame) is FullFrame else frame.depth
            payload, bbo = book.book_template.render_with_bbo(
                book.bbo_template,
                seq,
                book.bbo_seq.next(),
                pub_ns,
                recv_ns,
                ints,
                depth,
                bid_texts,
                ask_texts,
                deep.best_bid(),
                deep.best_ask(),
                depth_of,
            )
        else:
            payload = book.book_template.render_texts(
                seq, pub_ns, recv_ns, ints, depth, bid_texts, ask_texts
            )
        self.outbox.append((book.book_topic, payload))
        book.last_book = payload
        book.published += 1
        self.stats.books_out += 1
        if len(self.latencies) < _LATENCY_SAMPLES_MAX:
            self.latencies.append(pub_ns - recv_ns)
        if bbo is None:
            return
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

"""What the hub keeps per topic: its state, its sequence counters, its last payloads.

Records only; the rules that change them are :class:`mdgw.core.hub.Hub`'s.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field, fields

from mdgw.core.arbiter import Arbiter
from mdgw.core.bbo_fusion import BboFusion
from mdgw.core.book import OrderBook
from mdgw.core.bybit import BookFrame, RpiFrame
from mdgw.core.full_book import FullBook
from mdgw.core.rpi_book import RpiBook
from mdgw.core.wire import BboTemplate, BookTemplate

__all__ = ["BookTopic", "HubStats", "SeqCounter", "State", "TradeTopic"]


class State(enum.Enum):
    """Where one Bybit orderbook topic stands (published in ``status`` messages)."""

    NEW = "new"  # never had a snapshot
    LIVE = "live"
    RESYNCING = "resyncing"
    STALE = "stale"  # live, but no frame for stale_after seconds


@dataclass(slots=True)
class HubStats:
    """Counters since start; the shell logs them (and rates) periodically."""

    envelopes: int = 0
    frames: int = 0
    bad_envelopes: int = 0
    malformed: int = 0
    unsupported: int = 0
    duplicates: int = 0
    gaps: int = 0
    crossed: int = 0
    not_synced: int = 0
    seq_holes: int = 0
    frames_lost: int = 0
    resyncs: int = 0
    resync_requests: int = 0
    reconnect_requests: int = 0
    conn_up: int = 0
    conn_down: int = 0
    ingestors_lost: int = 0
    books_out: int = 0
    bbo_out: int = 0
    trades_out: int = 0
    trades_dup: int = 0
    status_out: int = 0
    topics_refused: int = 0  # frames of new topics past MAX_TOPICS
    held: int = 0  # deltas of a later u kept until another source filled the hole
    filled: int = 0  # held deltas applied after another source filled the hole
    older_snapshots: int = 0  # snapshots older than their book, dropped
    failovers: int = 0  # a source became unusable for a book another source kept live
    trades_stale: int = 0  # trades with a Bybit seq older than the symbol's newest (replays)
    bbo_older: int = 0  # fused tops refused: their Bybit seq was not newer
    notices_out: int = 0  # system.status notices published
    notices_dup: int = 0  # system.status notices seen before, unchanged

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SeqCounter:
    """The last ``seq`` published on one gateway topic.

    One per gateway topic, shared by every record that publishes on it: two depths of one
    symbol (``orderbook.1`` and ``orderbook.50``) both publish ``book.linear.BTCUSDT.``, and
    that topic's ``seq`` must still go 1, 2, 3...
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        """Count one message and return its ``seq``."""
        self.last += 1
        return self.last


@dataclass(slots=True, eq=False)  # identity: the hub keeps books in a set
class BookTopic:
    """One Bybit ``orderbook.{depth}.{symbol}`` topic of one category, and what it publishes.

    Also ``orderbook.rpi.{symbol}`` (an :class:`RpiBook` publishing on ``rpi.*``) and
    ``orderbook.full.{symbol}`` (a :class:`FullBook`, synced from the REST snapshot).
    """

    category: str
    symbol: str
    bybit_topic: str
    order_book: OrderBook | RpiBook | FullBook
    publish_depth: int
    book_topic: bytes  # where this book publishes: book.* (or rpi.* for an RPI book)
    bbo_topic: bytes
    status_topic: bytes
    book_template: BookTemplate
    bbo_template: BboTemplate
    book_seq: SeqCounter
    bbo_seq: SeqCounter
    status_seq: SeqCounter
    arb: Arbiter  # which source's frames this book takes (mdgw.core.arbiter)
    state: State = State.NEW
    reason: str = ""  # why the book last left the live state
    # Single-source books only (orderbook.rpi, orderbook.full: not arbitrated): the
    # (ingestor, conn_id) that delivered the current snapshot (or feeds the full-book sync),
    # and the last ingestor that sent a frame for the topic.
    source: tuple[str, int] | None = None
    ingestor: str = ""
    last_frame_at: float = 0.0
    requested_at: float | None = None  # last resync request sent for this topic
    episode_requested: bool = False  # a request was sent in the current resync episode
    episode_requests: int = 0  # requests sent in the current resync episode
    last_book: bytes | None = None  # last published payloads, for the snapshot service
    last_bbo: bytes | None = None
    last_best: tuple[str | None, str | None] | None = None  # OrderBook.best_json()
    # "book", "rpi", or "bbo" for a depth-1 book that only feeds its symbol's fused bbo.
    feed: str = "book"
    fusion: BboFusion | None = None  # set when depth 1 and a deeper depth share the bbo
    # Conflation (max_rate > 0): earliest time of the next publish, and the last frame
    # applied since the last publish (None: nothing pending).
    next_publish_at: float = 0.0
    pending: BookFrame | RpiFrame | None = None
    pending_recv_ns: int = 0
    # For metrics (read in copies by Hub.book_rows): counts, and when the state last
    # changed. Never read by the hub's rules, so a replay's output does not depend on them.
    frames: int = 0
    published: int = 0
    since: float = 0.0
    resyncs: dict[str, int] = field(default_factory=dict)  # resync_label -> episodes


@dataclass(slots=True)
class TradeTopic:
    """One Bybit ``publicTrade.{symbol}`` topic of one category: its seq and recent trade ids."""

    topic: bytes
    seq: SeqCounter
    seen: set[str] = field(default_factory=set)
    order: deque[str] = field(default_factory=deque)  # the ids in ``seen``, oldest first
    last_seq: int = 0  # newest Bybit seq published (0: none, or frames without seq)
    frames: int = 0  # for metrics

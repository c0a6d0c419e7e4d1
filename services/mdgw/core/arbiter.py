"""Arbitration of one order-book topic that arrives on several sources, sans-I/O.

A *source* is one ingestor connection: ``(ingestor id, conn_id)``. The same Bybit topic may
arrive on several of them (``connections = 2`` in a stream, or several ingestors listing the
same streams, on this host or others). Bybit's ``u`` is per topic and the same on every
connection: the delta with a given ``u`` carries the same change whoever delivers it. So a
book can follow whichever source is first, exactly.

Rules of :meth:`Arbiter.offer` (one per frame, in arrival order):

- a delta with ``u == last_u + 1`` is applied, from whichever source delivers it first
  (:attr:`Verdict.APPLY`); that source is counted as *first* for that ``u``;
- a delta with ``u <= last_u`` is a later copy: dropped and counted as a duplicate
  (:attr:`Verdict.DUPLICATE`), with the source's lag behind the first copy;
- a delta with ``u > last_u + 1`` is a gap *for the book* only if no other source can
  still deliver ``last_u + 1``: it is kept (:attr:`Verdict.HELD`, at most :data:`MAX_HELD`
  frames) while another source can, and applied in order once the hole is filled
  (:meth:`Arbiter.next_held`); else :attr:`Verdict.GAP` (the shell resyncs). The shell also
  gives up on held frames after a grace period (:attr:`Arbiter.held_since`);
- a snapshot is taken (:attr:`Verdict.APPLY`) only if it is not older than the book:
  ``u > last_u``, ``u == 1`` with a ``ts`` after the book's (Bybit's restart; a slower
  source's copy of it, after the book moved on, is older) or ``u == last_u`` with a new
  ``ts`` (the
  same book sent again: a level-1 re-push or a fresh subscription). The same message again
  (same ``u`` and ``ts``: another source's copy) is a duplicate; an older snapshot is
  dropped (:attr:`Verdict.OLDER`) and never rolls the book back. While the book is out of
  sync the last ``u`` stays as a floor for snapshots, until :meth:`Arbiter.forget_floor`
  (the shell calls it when a resync drags on: a Bybit restart whose ``u = 1`` was missed).

A source *can continue* the book when it is alive, has not lost frames since the last one it
delivered (:meth:`Arbiter.mark_lost`), and that last frame's ``u`` is ``<= last_u``: its
stream is contiguous, so it will deliver ``last_u + 1``. A source that fell behind (it
skipped a ``u``, lost frames, went silent) needs nothing to come back: its frames are always
compared with the book's ``u``, and the next one it delivers makes its position known again.
A source whose own ``u`` jumps (a hole in what it delivered) is counted (``gaps``) in its
:class:`SourceStats`: the operator sees which connection loses data.

The shell keeps ``last_u`` of the arbiter and of the :class:`~mdgw.core.book.OrderBook` equal:
it applies exactly the frames the arbiter passes, and calls :meth:`Arbiter.desync` whenever
the book stops being live.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any, Final

from mdgw.core.bybit import BookFrame

__all__ = ["MAX_HELD", "Arbiter", "Source", "SourceStats", "Verdict"]

# Frames of later u kept while another source may still fill the hole. A book topic sends at
# most 50 deltas a second (orderbook.50: one per 20 ms): this is several seconds of them.
MAX_HELD: Final = 256
# First-delivery times remembered per topic, to measure the lag of later copies: a copy more
# than this many u behind the first one is counted as late but not measured.
_RING: Final = 256
_RING_MASK: Final = _RING - 1
_LOST: Final = -1  # a source's position after it lost frames: unknown until its next one


class Verdict(enum.Enum):
    """What to do with one offered frame."""

    APPLY = "apply"  # apply this frame to the book now (then drain next_held)
    DUPLICATE = "duplicate"  # a copy of a u the book already has: drop
    HELD = "held"  # a later u, kept until another source fills the hole
    OLDER = "older"  # a snapshot older than the book: drop, never roll back
    NOT_SYNCED = "not_synced"  # a delta while the book has no snapshot
    GAP = "gap"  # a u no source can deliver: the book must resync


# Enum members are slow to look up (a descriptor call each): the per-frame path uses these.
_APPLY: Final = Verdict.APPLY
_DUPLICATE: Final = Verdict.DUPLICATE


@dataclass(slots=True)
class SourceStats:
    """Counters of one named source (``ingestor/connection``), kept across its reconnects."""

    first: int = 0  # frames (deltas and snapshots) it delivered first and the book took
    late: int = 0  # copies it delivered after another source
    lag_ns_total: int = 0  # sum of those copies' lag behind the first copy
    lag_samples: int = 0
    lag_ns_max: int = 0  # since the last reset_max() (the shell: per stats line)
    gaps: int = 0  # holes in the u it delivered (a skipped or lost delta of a topic)
    seq_holes: int = 0  # holes in its envelope sequence (frames lost on the way)
    older_snapshots: int = 0  # snapshots older than the book, dropped
    failovers: int = 0  # times it became unusable while another source kept its books

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Source:
    """One ingestor connection feeding the builder. The shell owns these objects."""

    __slots__ = ("alive", "arbiters", "conn_id", "ingestor", "name", "seq", "stats")

    def __init__(self, ingestor: str, conn_id: int, name: str, stats: SourceStats) -> None:
        self.ingestor = ingestor
        self.conn_id = conn_id
        self.name = name  # for logs and stats: "ingestor/slot"
        self.stats = stats  # shared by every connection with this name
        self.seq = 0  # last envelope seq (DATA) seen from it; the shell's business
        self.alive = True
        self.arbiters: list[Arbiter] = []  # every topic it delivered a frame of

    def __repr__(self) -> str:
        return f"Source({self.name!r}, conn_id={self.conn_id:#x}, alive={self.alive})"


class Arbiter:
    """Which source's frame the book of one topic takes; see the module docstring."""

    __slots__ = (
        "_events",
        "_pos",
        "_ring_ns",
        "_snap_ts",
        "_snap_u",
        "held",
        "held_since",
        "ingestors",
        "key",
        "last_u",
        "synced",
    )

    def __init__(
        self, key: tuple[str, str], events: list[tuple[str, dict[str, Any]]] | None = None
    ) -> None:
        self.key = key  # (category, Bybit topic): the shell's name for this book
        # Where a source's hole in u is reported, as ("source_gap", fields): the hub's
        # event list (the shell logs it, rate limited). Never one per frame.
        self._events = events
        self.synced = False  # the book holds a snapshot and every u since
        self.last_u: int | None = None  # u of the book; kept as a floor while not synced
        self._snap_u = 0  # u and ts of the last snapshot taken
        self._snap_ts = -1
        self._pos: dict[Source, int] = {}  # last u each source delivered (_LOST: unknown)
        # Deltas of a later u waiting for a hole to be filled: u -> (frame, recv_ns, source).
        # The shell only tests it for emptiness (then calls next_held).
        self.held: dict[int, tuple[BookFrame, int, Source]] = {}
        self.held_since: float | None = None  # when the current wait for a hole began
        self.ingestors: set[str] = set()  # every ingestor that ever delivered this topic
        self._ring_ns = [0] * _RING  # recv_ns of the first delivery of u, at u % _RING

    # ------------------------------------------------------------------ frames

    def offer(self, src: Source, frame: BookFrame, recv_ns: int, now: float) -> Verdict:
        """One frame of this topic from ``src``, received at ``recv_ns`` (wall clock)."""
        u = frame.u
        pos = self._pos
        prev = pos.get(src)
        pos[src] = u
        # Nearly every frame is the next u of a source that delivered u - 1 before: it goes
        # straight to the test below, which the book takes (first) or already has (late).
        if prev != u - 1 or not self.synced or frame.snapshot:
            verdict = self._offer_other(src, frame, recv_ns, prev)
            if verdict is not None:
                return verdict
        last: int = self.last_u  # type: ignore[assignment]  # synced: never None
        if u == last + 1:
            self.last_u = u
            src.stats.first += 1
            self._ring_ns[u & _RING_MASK] = recv_ns
            return _APPLY
        if u <= last:
            self._late(src, u, recv_ns)
            return _DUPLICATE
        return self._hold(src, frame, recv_ns, now)

    def _offer_other(
        self, src: Source, frame: BookFrame, recv_ns: int, prev: int | None
    ) -> Verdict | None:
        """The verdict on a frame that is not simply a source's next ``u``: a source's first
        frame, a jump in its ``u``, a snapshot, a book not synced; None: the book is synced
        and the delta is compared with its ``u`` (:meth:`offer`)."""
        u = frame.u
        if prev is None:
            src.arbiters.append(self)
            self.ingestors.add(src.ingestor)
        elif u < prev and self.held:
            # Its u went back (a Bybit restart reached it): what it delivered before
            # belongs to the old sequence.
            self._drop_held_from(src)
        if frame.snapshot:
            return self._offer_snapshot(src, frame, recv_ns)
        if prev is not None and u > prev + 1 and prev != _LOST:
            src.stats.gaps += 1
            if self._events is not None:
                self._events.append(
                    (
                        "source_gap",
                        {
                            "source": src.name,
                            "ingestor": src.ingestor,
                            "conn_id": src.conn_id,
                            "category": self.key[0],
                            "topic": self.key[1],
                            "expected": prev + 1,
                            "got": u,
                        },
                    )
                )
        if not self.synced:
            return Verdict.NOT_SYNCED
        return None

    def next_held(self) -> tuple[BookFrame, int] | None:
        """The held frame that continues the book, if any: ``(frame, recv_ns)``.

        Call after every applied frame while :attr:`held` is true, and apply what it gives
        until it gives ``None``.
        """
        held = self.held
        last = self.last_u
        if not held or last is None or not self.synced:
            return None
        item = held.pop(last + 1, None)
        if item is None:
            for stale in [v for v in held if v <= last]:
                del held[stale]
            if not held:
                self.held_since = None
            return None
        frame, recv_ns, src = item
        self.last_u = frame.u
        src.stats.first += 1
        self._ring_ns[frame.u & _RING_MASK] = recv_ns
        if not held:
            self.held_since = None
        return frame, recv_ns

    def restart_wait(self, now: float) -> None:
        """The book advanced but frames are still held: the wait for the next hole starts now."""
        if self.held:
            self.held_since = now

    def _offer_snapshot(self, src: Source, frame: BookFrame, recv_ns: int) -> Verdict:
        u = frame.u
        last = self.last_u
        if last is not None:
            # u = 1 is Bybit's restart, generated after everything the book holds; a slower
            # source's copy of it may arrive after the book moved on (its ts is older).
            if u < last and (u != 1 or frame.ts <= self._snap_ts):
                src.stats.older_snapshots += 1
                return Verdict.OLDER
            if self.synced and u == last and u == self._snap_u and frame.ts == self._snap_ts:
                self._late(src, u, recv_ns)
                return _DUPLICATE
        if last is not None and u < last:  # a restart: nothing held belongs to it
            self.held.clear()
            self.held_since = None
        self.synced = True
        self.last_u = self._snap_u = u
        self._snap_ts = frame.ts
        src.stats.first += 1
        self._ring_ns[u & _RING_MASK] = recv_ns
        return _APPLY

    def _late(self, src: Source, u: int, recv_ns: int) -> None:
        stats = src.stats
        stats.late += 1
        # The ring holds the first delivery of every u from the last snapshot on, the
        # last _RING of them. (Only called while synced: last_u is never None here.)
        if self._snap_u <= u and self.last_u - u < _RING:  # type: ignore[operator]
            lag = recv_ns - self._ring_ns[u & _RING_MASK]
            if lag > 0:  # another host's clock may be behind ours: no negative lags
                stats.lag_ns_total += lag
                stats.lag_ns_max = max(stats.lag_ns_max, lag)
            stats.lag_samples += 1

    def _hold(self, src: Source, frame: BookFrame, recv_ns: int, now: float) -> Verdict:
        held = self.held
        verdict = Verdict.HELD
        if frame.u in held:
            src.stats.late += 1
            verdict = Verdict.DUPLICATE
        elif len(held) >= MAX_HELD:
            return Verdict.GAP
        if not self.can_continue():
            return Verdict.GAP
        if verdict is Verdict.HELD:
            held[frame.u] = (frame, recv_ns, src)
            if self.held_since is None:
                self.held_since = now
        return verdict

    def _drop_held_from(self, src: Source) -> None:
        held = self.held
        for u in [u for u, item in held.items() if item[2] is src]:
            del held[u]
        if not held:
            self.held_since = None

    # ----------------------------------------------------------------- sources

    def can_continue(self) -> bool:
        """Some live source will still deliver ``last_u + 1`` (see the module docstring)."""
        last = self.last_u
        if last is None:
            return False
        return any(src.alive and 0 <= u <= last for src, u in self._pos.items())

    def mark_lost(self, src: Source) -> None:
        """``src`` lost frames at an unknown place (a hole in its envelope sequence, a
        malformed frame): until its next frame of this topic, it cannot continue the book."""
        if src in self._pos:
            self._pos[src] = _LOST

    def remove(self, src: Source) -> None:
        """``src`` is gone (its connection closed, its ingestor died)."""
        self._pos.pop(src, None)

    def sources(self) -> list[Source]:
        """The live sources that delivered this topic, best first (most often first)."""
        live = [src for src in self._pos if src.alive]
        live.sort(key=lambda src: (-src.stats.first, src.name, src.conn_id))
        return live

    # --------------------------------------------------------------- the book

    def desync(self) -> None:
        """The book stopped being live (gap, crossed, resync): wait for a snapshot.

        ``last_u`` stays as the floor below which no snapshot is taken.
        """
        self.synced = False
        self.held.clear()
        self.held_since = None

    def forget_floor(self) -> None:
        """Take the next snapshot whatever its u (a resync that brought no acceptable one)."""
        if not self.synced:
            self.last_u = None

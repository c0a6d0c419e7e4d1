"""A consumer that checks what book_builder publishes against the simulator's truth.

:class:`TruthConsumer` is a SUB on the pub socket that checks every ``book`` message
against the in-process simulator's truth at that ``u`` (``Market.truth``), every topic's
``seq`` for holes, which books are published while their last ``status`` was not
``live``, and records every trade id. The simulator runs in the caller's event loop
(``SimulatorServer``), so its truth is read directly; the consumer must run in that same
loop.

:func:`check_books` checks any number of books (as the gateway publishes them) against the
truth in one walk back through its history per topic (``Market.truths``): the consumer checks
each batch it drains that way, and a test checks the books its own readers kept.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import zmq
import zmq.asyncio

from mdgw.core import wire
from mdgw.simulator.market import Market
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import Key, Stream

__all__ = [
    "Checked",
    "Observed",
    "Status",
    "TruthConsumer",
    "check_books",
    "subscriber",
    "wait_for",
]


@dataclass
class Checked:
    """What :func:`check_books` found."""

    verified: int = 0
    unverifiable: int = 0  # the truth of their u is gone (older than its history) or unknown
    wrong: list[str] = field(default_factory=list)


def check_books(
    market: Market,
    books: Iterable[Mapping[str, Any]],
    depths: Mapping[Key, int],
    publish_depth: int,
) -> Checked:
    """Each book (a published ``book`` payload: category, symbol, u, bids, asks) against the
    truth of ``orderbook.{depth}`` at its ``u``, its best *publish_depth* levels a side.

    Books of keys not in *depths* are skipped. One walk back through the truth per key, from
    now to the oldest u asked for, whatever the number of books or their order.
    """
    by_key: defaultdict[Key, list[Mapping[str, Any]]] = defaultdict(list)
    for book in books:
        key = (book["category"], book["symbol"])
        if key in depths:
            by_key[key].append(book)
    out = Checked()
    for key, kept in by_key.items():
        truths = market.truths(key[0], key[1], depths[key], {book["u"] for book in kept})
        # In u order, the truth as the payloads print it (lists) made once per u and dropped
        # after it: kept for all, thousands of them would make the collector's work heavy.
        kept.sort(key=lambda book: int(book["u"]))
        u: int | None = None
        printed: tuple[list[list[str]], list[list[str]]] | None = None
        for book in kept:
            if book["u"] != u:
                u = book["u"]
                truth = truths.get(u)
                printed = None
                if truth is not None:
                    printed = (
                        list(map(list, truth.bids[:publish_depth])),
                        list(map(list, truth.asks[:publish_depth])),
                    )
            if printed is None:
                out.unverifiable += 1
                continue
            out.verified += 1
            if book["bids"] != printed[0] or book["asks"] != printed[1]:
                out.wrong.append(f"{key} u={u}: book differs from the truth")
    return out


@dataclass
class Status:
    key: Key
    state: str
    reason: str
    pub_ns: int
    seen_ns: int


@dataclass
class Observed:
    """What a :class:`TruthConsumer` saw, checked as it arrived."""

    messages: int = 0
    payload_bytes: int = 0  # of every message
    books: int = 0
    verified: int = 0
    unverifiable: int = 0
    wrong: list[str] = field(default_factory=list)
    seq: dict[bytes, int] = field(default_factory=dict)
    seq_errors: list[str] = field(default_factory=list)
    seq_error_at: list[float] = field(default_factory=list)  # monotonic, one per seq_errors
    restarts: int = 0  # topics whose seq started again at 1 (book_builder restarted)
    state: dict[Key, str] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    last_book_at: dict[Key, float] = field(default_factory=dict)  # monotonic
    last_u: dict[Key, int] = field(default_factory=dict)
    published_while_not_live: list[str] = field(default_factory=list)
    rollbacks: list[str] = field(default_factory=list)  # a book at a lower u than the last
    channels: Counter[str] = field(default_factory=Counter)
    trades: defaultdict[Key, list[str]] = field(default_factory=lambda: defaultdict(list))
    pub_ns: list[int] | None = None  # every message's pub_ns, when asked for (record_pub_ns)
    last_pub_ns: int = 0  # of the last message of any topic: how far this consumer has read
    last_book_pub_ns: dict[Key, int] = field(default_factory=dict)
    # Set by TruthConsumer.watch_current: the u each book must reach, and the pub_ns of the
    # first live book at or past it (the publisher's clock: this consumer's lag is not in it).
    current_u: dict[Key, int] = field(default_factory=dict)
    current_at_ns: dict[Key, int] = field(default_factory=dict)


def subscriber(
    ctx: zmq.asyncio.Context, pub: str, prefixes: Sequence[bytes] = (b"",)
) -> zmq.asyncio.Socket:
    """A SUB on the gateway's *pub* for topics starting with *prefixes* (all by default)
    that never drops a message: a consumer that checks ``seq`` sees every hole as the
    gateway's."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.LINGER, 0)
    for prefix in prefixes:
        sub.subscribe(prefix)
    sub.connect(pub)
    return sub


class TruthConsumer:
    """SUB on the pub socket; every book checked against the simulator's truth.

    ``sample`` < 1 checks that fraction of books (chosen at random, seeded) plus the first
    book after every status change, for rates where checking all would cost too much. The
    books to check are checked at the end of each batch drained from the socket, all in one
    walk through the truth (:func:`check_books`): nothing else in the loop runs in between,
    so the answers are those of a check at arrival, for a fraction of its cost.
    ``record_pub_ns`` keeps every message's ``pub_ns``: rates on the publisher's clock, which
    this consumer's own lag (it shares a busy process with the simulator) does not bend.
    """

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        pub: str,
        sim: SimulatorServer,
        streams: Sequence[Stream],
        *,
        publish_depth: int = 25,
        sample: float = 1.0,
        prefixes: Sequence[bytes] = (b"",),
        record_pub_ns: bool = False,
    ) -> None:
        self.sim = sim
        self.depths = {s.key: s.depth for s in streams}
        self.publish_depth = publish_depth
        self.sample = sample
        self.rng = random.Random(1)
        self.seen = Observed(pub_ns=[] if record_pub_ns else None)
        self.sub = subscriber(ctx, pub, prefixes)
        self._check_next: set[Key] = set()
        self._to_check: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> TruthConsumer:
        self.task = asyncio.create_task(self._run(), name="truth-consumer")
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            if not self.task.cancelled() and self.task.exception() is not None:
                raise self.task.exception()  # type: ignore[misc]
        self.sub.close(linger=0)

    def check(self) -> None:
        """Raise if the consumer task died (a bug in the check itself)."""
        if self.task is not None and self.task.done() and not self.task.cancelled():
            exc = self.task.exception()
            if exc is not None:
                raise exc

    async def _run(self) -> None:
        recv = self.sub.recv_multipart
        poll = self.sub.poll
        while True:
            await poll()
            # Drain what is waiting without a trip through the loop per message.
            for _ in range(4096):
                try:
                    frames = await recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_message(frames)
            self._check_books()

    def _check_books(self) -> None:
        if not self._to_check:
            return
        checked = check_books(self.sim.market, self._to_check, self.depths, self.publish_depth)
        self._to_check = []
        seen = self.seen
        seen.verified += checked.verified
        seen.unverifiable += checked.unverifiable
        seen.wrong += checked.wrong

    def _on_message(self, frames: list[bytes]) -> None:
        seen = self.seen
        seen.messages += 1
        topic, payload = frames
        seen.payload_bytes += len(payload)
        msg = orjson.loads(payload)
        channel, category, symbol = msg["channel"], msg["category"], msg["symbol"]
        seen.channels[channel] += 1
        key = (category, symbol)
        last = seen.seq.get(topic)
        if last is not None and msg["seq"] != last + 1:
            if msg["seq"] == 1:
                seen.restarts += 1
            else:
                seen.seq_errors.append(f"{topic!r}: seq {last} -> {msg['seq']}")
                seen.seq_error_at.append(time.monotonic())
        seen.seq[topic] = msg["seq"]
        seen.last_pub_ns = msg["pub_ns"]
        if seen.pub_ns is not None:
            seen.pub_ns.append(msg["pub_ns"])
        if wire.parse_gateway_topic(topic) != (channel, category, symbol):
            seen.wrong.append(f"topic {topic!r} does not match its payload")
        if channel == "status":
            seen.state[key] = msg["state"]
            seen.statuses.append(
                Status(key, msg["state"], msg["reason"], msg["pub_ns"], time.time_ns())
            )
            self._check_next.add(key)
            return
        if channel == "trade":
            seen.trades[key].append(msg["id"])
            return
        if channel != "book":
            return
        seen.books += 1
        seen.state.setdefault(key, "live")  # joined after its status message
        if seen.state[key] != "live":
            seen.published_while_not_live.append(f"{key} u={msg['u']} ({seen.state[key]})")
        seen.last_book_at[key] = time.monotonic()
        seen.last_book_pub_ns[key] = msg["pub_ns"]
        before = seen.last_u.get(key)
        if before is not None and msg["u"] < before and msg["u"] != 1:  # 1: Bybit's restart
            seen.rollbacks.append(f"{key}: book u {before} -> {msg['u']}")
        seen.last_u[key] = msg["u"]
        wanted = seen.current_u.get(key)
        if (
            wanted is not None
            and msg["u"] >= wanted
            and key not in seen.current_at_ns
            and seen.state[key] == "live"
        ):
            seen.current_at_ns[key] = msg["pub_ns"]
        if key not in self.depths:
            return
        if self.sample < 1.0 and key not in self._check_next and self.rng.random() >= self.sample:
            return
        self._check_next.discard(key)
        self._to_check.append(msg)

    # --- questions ------------------------------------------------------------------------

    def all_live(self, keys: Iterable[Key]) -> bool:
        return all(self.seen.state.get(k) == "live" for k in keys)

    def books_since(self, keys: Iterable[Key], since: float) -> bool:
        """Every key had a book after monotonic time *since*, and is live."""
        return all(
            self.seen.last_book_at.get(k, 0.0) > since and self.seen.state.get(k) == "live"
            for k in keys
        )

    def live_book_published_after(self, key: Key, ns: int) -> bool:
        """A book of *key* published (``pub_ns``) after *ns*, and *key* is live."""
        seen = self.seen
        return seen.last_book_pub_ns.get(key, 0) > ns and seen.state.get(key) == "live"

    def watch_current(self, keys: Iterable[Key]) -> None:
        """From now on, note when each book is first published at the simulator's current u.

        The u of each key is read now; :meth:`current_since` answers when every one of them
        was published, live, at that u or later (a backlog of older books does not count).
        """
        market = self.sim.market
        self.seen.current_at_ns = {}
        self.seen.current_u = {
            k: market.current_u(k[0], k[1], self.depths[k]) for k in keys if k in self.depths
        }

    def current_since(self) -> int | None:
        """The pub_ns at which the last watched book became current; None while one is not."""
        seen = self.seen
        if len(seen.current_at_ns) < len(seen.current_u):
            return None
        return max(seen.current_at_ns.values(), default=None)

    def first_status(self, key: Key, state: str, after_ns: int) -> Status | None:
        for status in self.seen.statuses:
            if status.key == key and status.state == state and status.pub_ns >= after_ns:
                return status
        return None


async def wait_for(
    check: Callable[[], bool], what: str, timeout: float, *, interval: float = 0.05
) -> float:
    """Poll *check* until true; the seconds it took. AssertionError past *timeout*."""
    start = time.monotonic()
    deadline = start + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start

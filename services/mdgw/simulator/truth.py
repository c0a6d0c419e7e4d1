"""The truth: the exact window of any topic at any ``u`` it has sent, from an undo log.

Per symbol, one entry per market step since a book topic was first tracked, for the last
``truth_history`` steps: the sizes the levels it changed had before it. Rewinding the
current deep book by the entries since a step gives the book at that step, and a topic's
history says at which step it sent each ``u``. :meth:`TruthLog.windows` answers many ``u``
in one walk back through the log (newest first), for checks of thousands of books.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from heapq import nsmallest
from itertools import chain

from mdgw.simulator.book import DeepBook, Side
from mdgw.simulator.topics import DepthTopic

__all__ = ["Levels", "TruthLog", "TruthUnavailableError", "Window"]

# One side of a window: (price, size) strings, best first.
Levels = list[tuple[str, str]]


class TruthUnavailableError(LookupError):
    """The topic never sent this ``u``, or it is older than the kept history."""


@dataclass(frozen=True, slots=True)
class Window:
    """A topic's book at one ``u``: price and size strings exactly as the frames print them."""

    u: int
    bids: Levels
    asks: Levels


class TruthLog:
    """The undo log of one symbol's deep book."""

    def __init__(self, history: int) -> None:
        # One entry per step (the newest is the symbol's current step): [bid pair count,
        # bid key, previous size, ..., ask key, previous size, ...]. One flat array a step
        # keeps 500 symbols x 2000 steps at about 150 MB.
        self.steps: deque[array[int]] = deque(maxlen=history)

    def __len__(self) -> int:
        return len(self.steps)

    def record(self, pend_b: Mapping[int, int], pend_a: Mapping[int, int]) -> None:
        """Log one step: the sizes before it of the levels it changed."""
        undo = array("q", (len(pend_b),))
        undo.extend(chain.from_iterable(pend_b.items()))
        undo.extend(chain.from_iterable(pend_a.items()))
        self.steps.append(undo)

    def window(
        self, book: DeepBook, topic: DepthTopic, u: int, step_no: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The topic's window at *u* as (key, size) pairs of bids and asks."""
        step = next((s for seen, s in reversed(topic.history) if seen == u), None)
        if step is None:
            raise TruthUnavailableError(f"{topic.name} has not sent u={u} (or it is too old)")
        depth = topic.depth
        if step == step_no:
            return book.bids.top(depth), book.asks.top(depth)
        if step_no - len(self.steps) > step:
            raise TruthUnavailableError(f"{topic.name} u={u} is older than the kept history")
        undo_b: dict[int, int] = {}
        undo_a: dict[int, int] = {}
        # Walking back in time: the last value written is the oldest, the one we want.
        for undo in itertools.islice(reversed(self.steps), step_no - step):
            split = 1 + 2 * undo[0]
            undo_b.update(zip(undo[1:split:2], undo[2:split:2], strict=True))
            undo_a.update(zip(undo[split::2], undo[split + 1 :: 2], strict=True))
        return _rewound(book.bids, undo_b, depth), _rewound(book.asks, undo_a, depth)

    def windows(
        self, book: DeepBook, topic: DepthTopic, us: Collection[int], step_no: int
    ) -> Iterator[tuple[list[int], list[tuple[int, int]], list[tuple[int, int]]]]:
        """:meth:`window` at each of *us* in one walk back from now, newest first: (the u's
        sent at a step, bids, asks) per step. The u's whose truth is unavailable are left out.

        A copy of the book is rewound step by step and read at each step a wanted u was
        sent: the whole walk costs one rewind to the oldest of them, where :meth:`window`
        costs one from now per u.
        """
        wanted = set(us)
        sent: dict[int, int] = {}  # u -> step; oldest first, so the latest sending wins
        for u, step in topic.history:
            if u in wanted:
                sent[u] = step
        oldest = step_no - len(self.steps)
        at_step: dict[int, list[int]] = {}
        for u, step in sent.items():
            if step >= oldest:
                at_step.setdefault(step, []).append(u)
        steps = sorted(at_step, reverse=True)
        depth = topic.depth
        if steps and steps[0] == step_no:  # now: no copy of the book needed
            yield at_step[steps.pop(0)], book.bids.top(depth), book.asks.top(depth)
        if not steps:
            return
        bids, asks = _Rewinding(book.bids), _Rewinding(book.asks)
        undos = reversed(self.steps)
        now = step_no
        for step in steps:
            for undo in itertools.islice(undos, now - step):
                split = 1 + 2 * undo[0]
                bids.undo(undo[1:split])
                asks.undo(undo[split:])
            now = step
            yield at_step[step], bids.top(depth), asks.top(depth)


class _Rewinding:
    """A copy of one side of the deep book, taken back in time one step's undo at a time."""

    __slots__ = ("keys", "sizes")

    def __init__(self, side: Side) -> None:
        self.keys = list(side.keys)
        self.sizes = dict(side.sizes)

    def undo(self, pairs: array[int]) -> None:
        """Give each (key, size before the step) pair its size before the step (0: absent)."""
        keys, sizes = self.keys, self.sizes
        for key, old in zip(pairs[::2], pairs[1::2], strict=True):
            if old:
                if key not in sizes:
                    insort(keys, key)
                sizes[key] = old
            elif sizes.pop(key, 0):
                del keys[bisect_left(keys, key)]

    def top(self, depth: int) -> list[tuple[int, int]]:
        keys = self.keys[:depth]
        return list(zip(keys, map(self.sizes.__getitem__, keys), strict=True))


def _rewound(side: Side, undo: Mapping[int, int], depth: int) -> list[tuple[int, int]]:
    sizes = dict(side.sizes)
    for key, old in undo.items():
        if old:
            sizes[key] = old
        else:
            sizes.pop(key, None)
    return [(key, sizes[key]) for key in nsmallest(depth, sizes)]

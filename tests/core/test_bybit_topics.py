"""mdgw.core.bybit_topics: parse_book_topic and its memo.

parse_book_topic keeps its answers by topic (only the topics it parsed, at most a bound of
them, then it starts again). The memo must never change an answer: the memoised function
is held to an un-memoised reference written here, on arbitrary text and on topics near the
valid ones, with the memo empty, about to start again and full.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw.core import bybit_topics
from mdgw.core.bybit_spec import FULL_DEPTH
from mdgw.core.bybit_topics import OrderbookTopic, parse_book_topic, parse_orderbook_topic
from mdgw.core.wire import is_topic_symbol
from mdgw.testing.examples import examples

MEMO = bybit_topics._BOOK_TOPIC_MEMO
BOUND = bybit_topics._BOOK_TOPIC_MEMO_MAX
_DEPTH = re.compile(r"[0-9]{1,5}")  # ASCII digits only, at most five


def reference(topic: str) -> OrderbookTopic | None:
    """parse_book_topic's rule, without a memo: ``orderbook.{depth}.{symbol}`` (depth >= 1
    in at most five ASCII digits) or ``orderbook.full.{symbol}``, a symbol a gateway topic
    can carry, at most MAX_TOPIC_LEN characters in all."""
    if len(topic) > bybit_topics.MAX_TOPIC_LEN:
        return None
    parts = topic.split(".")
    if len(parts) == 3 and parts[0] == "orderbook" and _DEPTH.fullmatch(parts[1]):
        depth = int(parts[1])
        if depth >= 1 and is_topic_symbol(parts[2]):
            return OrderbookTopic(parts[2], depth)
        return None
    if topic.startswith("orderbook.full.") and is_topic_symbol(topic[15:]):
        return OrderbookTopic(topic[15:], FULL_DEPTH)
    return None


# Valid topics, one per index: what fills the memo to a given size below.
FILLER = [
    (f"orderbook.{1 + i % 500}.F{i}", OrderbookTopic(f"F{i}", 1 + i % 500)) for i in range(BOUND)
]

SYMBOLS = st.one_of(
    st.sampled_from(
        ["BTCUSDT", "BTC-26DEC25-100000-C", "X", "_", "-", "A" * 64, "A" * 65, "F7", ""]
    ),
    st.sampled_from(["A.B", "BTC USDT", "BTC\u00e9", "BTC\n", "\uff21", "BTC/USDT"]),
    st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True),
    st.text(max_size=6),
)
DEPTHS = st.one_of(
    st.sampled_from(
        ["1", "25", "50", "200", "500", "1000", "01", "00001", "99999", "100000", "0", "00"]
    ),
    st.sampled_from(["", "-1", "+1", " 1", "1 ", "1_0", "\u0661", "\uff11", "\u00b2", "full"]),
    st.from_regex(r"[0-9]{1,7}", fullmatch=True),
)
PREFIXES = st.sampled_from(["orderbook"] * 6 + ["Orderbook", "orderbook ", "publicTrade", ""])
TOPICS = st.one_of(
    st.text(),
    st.builds(lambda p, d, s: f"{p}.{d}.{s}", PREFIXES, DEPTHS, SYMBOLS),
    st.builds(lambda s: "orderbook.full." + s, SYMBOLS),
    st.builds(lambda d, s, t: f"orderbook.{d}.{s}.{t}", DEPTHS, SYMBOLS, SYMBOLS),
    # Past MAX_TOPIC_LEN, and just within it.
    st.builds(lambda n: "orderbook.full." + "A" * n, st.integers(230, 300)),
    st.sampled_from([t for t, _ in FILLER[:3]]),  # topics the filled memo holds
)


def _fill(size: int) -> None:
    """The memo holding ``size`` valid topics (FILLER's first), as parse_book_topic keeps them."""
    MEMO.clear()
    MEMO.update(itertools.islice(FILLER, size))


def test_the_filler_is_what_parse_book_topic_answers() -> None:
    MEMO.clear()
    assert all(parse_book_topic(topic) == parsed == reference(topic) for topic, parsed in FILLER)
    assert len(MEMO) == BOUND


@pytest.mark.parametrize("filled", [0, BOUND - 4, BOUND], ids=["empty", "near-bound", "full"])
@settings(max_examples=examples(300), deadline=None)
@given(topics=st.lists(TOPICS, max_size=12))
def test_parse_book_topic_answers_as_the_reference(filled: int, topics: list[str]) -> None:
    """Each topic twice (a miss, then a hit if it was kept), from a memo empty, four short of
    its bound (several new topics make it start again) and full (the first new one does)."""
    _fill(filled)
    for topic in topics + topics:
        before = len(MEMO)
        got = parse_book_topic(topic)
        want = reference(topic)
        assert got == want, topic
        assert got is None or type(got) is OrderbookTopic
        if got is None:
            assert topic not in MEMO  # a refused topic is never kept
            assert len(MEMO) == before
        else:
            assert MEMO[topic] == got
            # One more entry, or none for a topic it held, or one alone: it started again.
            assert len(MEMO) in (before, before + 1, 1)
        assert len(MEMO) <= BOUND
    assert all(v is not None for v in MEMO.values())


def test_a_stream_of_refused_topics_does_not_grow_the_memo() -> None:
    MEMO.clear()
    for i in range(2 * BOUND):
        topic = f"orderbook.0.S{i}" if i % 2 else f"orderbook.{i}.BAD SYMBOL"
        assert parse_book_topic(topic) is None
    assert parse_book_topic("orderbook.1." + "A" * 300) is None
    assert not MEMO


def test_ever_new_topics_start_the_memo_again_at_its_bound() -> None:
    MEMO.clear()
    sizes = []
    for i in range(2 * BOUND + 5):
        topic = f"orderbook.full.N{i}" if i % 7 == 0 else f"orderbook.{1 + i % 99}.N{i}"
        assert parse_book_topic(topic) == reference(topic) is not None
        sizes.append(len(MEMO))
    assert max(sizes) == BOUND
    assert sizes.count(1) == 3  # the first topic, then twice at the bound
    assert sizes[BOUND - 1] == BOUND and sizes[BOUND] == 1 and sizes[-1] == 5
    assert parse_book_topic("orderbook.full.N0") == OrderbookTopic("N0", FULL_DEPTH)
    assert MEMO["orderbook.full.N0"] == OrderbookTopic("N0", FULL_DEPTH)


@pytest.mark.parametrize(
    ("topic", "want"),
    [
        ("orderbook.50.BTCUSDT", OrderbookTopic("BTCUSDT", 50)),
        ("orderbook.01.BTCUSDT", OrderbookTopic("BTCUSDT", 1)),
        ("orderbook.full.BTCUSDT", None),  # parse_book_topic's, not this one's
        ("orderbook.\u0661.BTCUSDT", None),
        ("orderbook.100000.BTCUSDT", None),
        ("orderbook.0.BTCUSDT", None),
    ],
)
def test_parse_orderbook_topic(topic: str, want: OrderbookTopic | None) -> None:
    """Public, without the full book's form, and the same answer each time."""
    assert parse_orderbook_topic(topic) == want
    assert parse_orderbook_topic(topic) == want

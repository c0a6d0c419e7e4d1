"""mdgw.core._render: the book and bbo payloads in C, held to core/wire/topics.py as pure Python.

The templates (``BookTemplate.render_texts``, ``BboTemplate.render``) call the C functions
when they are importable (the compiled build) and render their f-strings otherwise. Here
the templates in use render generated payloads beside the same templates of topics.py's
source run as pure Python, and the bytes must be equal; the C functions alone must return
None exactly where they cannot write what the f-string writes (an int that is not an exact
int in int64, a text that is not an exact ASCII str), and their payloads must parse to the
wire-format dict. The compiled run checks the C code is the one in use, by the templates
and by the hub; the pure-Python run checks it is absent.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import sys
import tracemalloc
from collections.abc import Callable
from types import FunctionType, ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw import compiled
from mdgw.core import hub_books, wire
from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.hub import Hub
from mdgw.core.wire import EnvelopeKind, topics
from mdgw.testing import oracles
from mdgw.testing.examples import examples

BOOK_C = topics._BOOK_C
BBO_C = topics._BBO_C
BOOK_BBO_C = topics._BOOK_BBO_C
needs_c = pytest.mark.skipif(
    BOOK_C is None, reason=f"the C payloads are not in use: {compiled.ACTIVE}"
)
I64 = 2**63


def _pure_topics() -> ModuleType:
    """core/wire/topics.py's source run as pure Python, without the C functions."""
    path = compiled.source_paths()[compiled.MODULES.index("mdgw.core.wire.topics")]
    spec = importlib.util.spec_from_file_location("_pure_mdgw_core_wire_topics", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._BOOK_C = module._BBO_C = module._BOOK_BBO_C = None  # read at each call
    assert type(module.BookTemplate.render_texts) is FunctionType  # interpreted, not compiled
    assert type(module.BookTemplate.render_with_bbo) is FunctionType
    assert type(module.BboTemplate.render) is FunctionType
    return module


PURE = _pure_topics()


class Text(str):
    """A str subclass with its own format(): the f-string uses it, the C code leaves it."""

    def __format__(self, spec: str) -> str:
        return f"<{str.__str__(self)}>"


def _handled_int(x: object) -> bool:
    return type(x) is int and -I64 <= x < I64


def _handled_text(x: object) -> bool:
    return type(x) is str and x.isascii()


# Ints the payloads carry: Bybit's and ours are 0 to 2**63 - 1; the C code must also write
# negatives as str() does, and leave beyond int64 and bools to the f-string.
INTS = st.one_of(
    st.integers(0, I64 - 1),
    st.integers(0, 10**6),
    st.sampled_from([0, 1, 9, 10, I64 - 1, I64, -I64, -I64 - 1, 2**64, -1, True, False]),
    st.integers(-(2**70), 2**70),
)
DECIMAL = st.from_regex(r"[0-9]{1,8}(\.[0-9]{1,8})?", fullmatch=True)
ANY_TEXT = st.one_of(DECIMAL, st.text(max_size=6), st.builds(Text, DECIMAL))
HEADS = st.tuples(
    st.sampled_from(CATEGORIES),
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.sampled_from(["book", "rpi"]),
    st.booleans(),
)
# A level as the book holds it: its strings, and the JSON text book.py makes of them.
LEVEL = st.lists(DECIMAL, min_size=2, max_size=3).map(tuple)
LEVELS = st.lists(LEVEL, max_size=60)


def _text(level: tuple[str, ...]) -> str:
    return "[" + ",".join(f'"{s}"' for s in level) + "]"


@st.composite
def texts(draw: st.DrawFn) -> tuple[list[tuple[str, ...]] | None, list[str]]:
    """A side's level texts, and its levels when the texts are the book's JSON; else a list
    that may hold any str (non-ASCII, a str subclass), which the C code must leave."""
    levels = draw(LEVELS)
    side = [_text(level) for level in levels]
    if draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 3))):
            side.insert(draw(st.integers(0, len(side))), draw(ANY_TEXT))
        return None, side
    return levels, side


def _subtypes(*values: object) -> bool:
    """Whether a bool or a str subclass is among them. Compiled, the templates take a bool
    for an int as 0 or 1 and a str subclass for a str as its characters, where the f-string
    prints ``True`` and calls the subclass's ``__format__``: mypyc's, before and after the C
    code, which leaves both to the compiled template."""
    return any(type(x) is bool or (isinstance(x, str) and type(x) is not str) for x in values)


def _json_string(x: object) -> bool:
    """Whether ``f'"{x}"'`` is the JSON string of ``x``, as orjson writes it."""
    return type(x) is str and not any(c in '"\\' or ord(c) < 0x20 for c in x)


def _wire_ints(*ints: object) -> bool:
    """Whether orjson can write these as JSON ints (the oracles are orjson)."""
    return all(type(x) is int and -I64 <= x < 2**64 for x in ints)


@settings(max_examples=examples(500), deadline=None)
@given(
    head=HEADS,
    ints=st.lists(INTS, min_size=5, max_size=5),
    cts=st.one_of(st.just(0), INTS),
    depth=st.one_of(st.integers(1, 70), st.sampled_from([0, -1, -5, I64, True])),
    bids=texts(),
    asks=texts(),
)
def test_book_payload_is_the_f_strings(
    *,
    head: tuple[str, str, str, bool],
    ints: list[int],
    cts: int,
    depth: int,
    bids: tuple[list[tuple[str, ...]] | None, list[str]],
    asks: tuple[list[tuple[str, ...]] | None, list[str]],
) -> None:
    category, symbol, channel, full = head
    seq, pub_ns, recv_ns, u, ts = ints
    bid_levels, bid_texts = bids
    ask_levels, ask_texts = asks
    mine = wire.BookTemplate(category, symbol, channel, full=full)
    pure = PURE.BookTemplate(category, symbol, channel, full=full)
    args = (seq, pub_ns, recv_ns, u, ts, cts, depth)
    # render_texts and C take the frame's (u, bybit_seq, ts, cts) as one tuple.
    with_texts = (seq, pub_ns, recv_ns, (u, 7, ts, cts), depth, bid_texts, ask_texts)
    want = pure.render(*args, ",".join(bid_texts[:depth]), ",".join(ask_texts[:depth]))
    assert pure.render_texts(*with_texts) == want
    if not _subtypes(*args):
        assert mine.render_texts(*with_texts) == want
    if BOOK_C is not None:
        got = BOOK_C(mine._head, mine._depth, *with_texts)
        handled = all(_handled_int(x) for x in (*args, depth)) and all(
            _handled_text(t) for t in bid_texts[:depth] + ask_texts[:depth]
        )
        assert got == (want if handled else None)
    if bid_levels is None or ask_levels is None or not _wire_ints(*args) or depth < 1:
        return
    payload = orjson.loads(want)
    reference = orjson.loads(
        oracles.encode_book(
            category,
            symbol,
            seq=seq,
            pub_ns=pub_ns,
            recv_ns=recv_ns,
            u=u,
            ts=ts,
            cts=cts or None,
            depth=depth,
            bids=bid_levels[:depth],  # type: ignore[arg-type]  # RPI levels: three strings
            asks=ask_levels[:depth],  # type: ignore[arg-type]
        )
    )
    reference["channel"] = channel
    if full:
        reference["depth"] = "full"
    assert payload == reference


SIDES = st.one_of(st.none(), st.tuples(DECIMAL, DECIMAL), st.tuples(ANY_TEXT, ANY_TEXT))


@settings(max_examples=examples(500), deadline=None)
@given(
    category=st.sampled_from(CATEGORIES),
    symbol=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    ints=st.lists(INTS, min_size=6, max_size=6),
    bid=SIDES,
    ask=SIDES,
    depth=st.one_of(INTS, st.sampled_from(["full", "50"]), ANY_TEXT),
)
def test_bbo_payload_is_the_f_strings(
    *,
    category: str,
    symbol: str,
    ints: list[int],
    bid: tuple[str, str] | None,
    ask: tuple[str, str] | None,
    depth: int | str,
) -> None:
    seq, pub_ns, recv_ns, u, ts, bybit_seq = ints
    args = (seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq, depth)
    want = PURE.BboTemplate(category, symbol).render(*args)
    mine = wire.BboTemplate(category, symbol)
    if not _subtypes(*ints, depth, *(bid or ()), *(ask or ())):
        assert mine.render(*args) == want
    if BBO_C is not None:
        got = BBO_C(mine._head, *args)
        handled = (
            all(_handled_int(x) for x in ints)
            and all(side is None or all(_handled_text(s) for s in side) for side in (bid, ask))
            and (_handled_int(depth) or _handled_text(depth))
        )
        assert got == (want if handled else None)
    texts = [s for side in (bid, ask) if side is not None for s in side]
    if not (
        _wire_ints(*ints)
        and all(_json_string(s) for s in texts)
        and (_wire_ints(depth) or _json_string(depth))
    ):
        return
    reference = wire.encode_bbo(
        category,
        symbol,
        seq=seq,
        pub_ns=pub_ns,
        recv_ns=recv_ns,
        u=u,
        ts=ts,
        bid=None if bid is None else bid[0],
        bid_size=None if bid is None else bid[1],
        ask=None if ask is None else ask[0],
        ask_size=None if ask is None else ask[1],
        bybit_seq=bybit_seq,
        depth=depth,
    )
    assert orjson.loads(want) == orjson.loads(reference)


@settings(max_examples=examples(500), deadline=None)
@given(
    head=HEADS,
    ints=st.lists(INTS, min_size=7, max_size=7),
    cts=st.one_of(st.just(0), INTS),
    depth=st.one_of(st.integers(1, 70), st.sampled_from([0, -1, I64, True])),
    bids=texts(),
    asks=texts(),
    bid=SIDES,
    ask=SIDES,
    bbo_depth=st.one_of(INTS, st.sampled_from(["full", "50"]), ANY_TEXT),
)
def test_book_and_bbo_in_one_call_are_the_f_strings(
    *,
    head: tuple[str, str, str, bool],
    ints: list[int],
    cts: int,
    depth: int,
    bids: tuple[list[tuple[str, ...]] | None, list[str]],
    asks: tuple[list[tuple[str, ...]] | None, list[str]],
    bid: tuple[str, str] | None,
    ask: tuple[str, str] | None,
    bbo_depth: int | str,
) -> None:
    """render_with_bbo: the bytes of the two templates run as pure Python, each; the C call
    alone gives both or None, None exactly where book() or bbo() alone would refuse."""
    category, symbol, channel, full = head
    seq, bbo_seq, pub_ns, recv_ns, u, ts, bybit_seq = ints
    bid_texts, ask_texts = bids[1], asks[1]
    stamp = (pub_ns, recv_ns, u, ts)
    frame_ints = (u, bybit_seq, ts, cts)  # BookFrame.ints: (u, seq, ts, cts)
    book_args = (seq, pub_ns, recv_ns, frame_ints, depth)
    bbo_args = (bbo_seq, *stamp, bid, ask, bybit_seq, bbo_depth)
    pure_book = PURE.BookTemplate(category, symbol, channel, full=full)
    pure_bbo = PURE.BboTemplate(category, symbol)
    want = (
        pure_book.render_texts(*book_args, bid_texts, ask_texts),
        pure_bbo.render(*bbo_args),
    )
    with_bbo = (
        bbo_seq,
        pub_ns,
        recv_ns,
        frame_ints,
        depth,
        bid_texts,
        ask_texts,
        bid,
        ask,
        bbo_depth,
    )
    assert pure_book.render_with_bbo(pure_bbo, seq, *with_bbo) == want
    mine_book = wire.BookTemplate(category, symbol, channel, full=full)
    mine_bbo = wire.BboTemplate(category, symbol)
    if not _subtypes(*ints, cts, depth, bbo_depth, *(bid or ()), *(ask or ())):
        assert mine_book.render_with_bbo(mine_bbo, seq, *with_bbo) == want
    if BOOK_BBO_C is None:
        return
    assert BOOK_C is not None and BBO_C is not None
    got = BOOK_BBO_C(mine_book._head, mine_book._depth, mine_bbo._head, seq, *with_bbo)
    alone = (
        BOOK_C(mine_book._head, mine_book._depth, *book_args, bid_texts, ask_texts),
        BBO_C(mine_bbo._head, *bbo_args),
    )
    if None in alone:
        assert got is None
    else:
        assert got == want == alone
        assert type(got) is tuple


@needs_c
def test_book_and_bbo_refuse_what_either_refuses() -> None:
    """None, not one payload, when only the book's or only the bbo's input is not written in
    C, or a shared int is not; and the template then renders both as the f-strings do."""
    assert BOOK_BBO_C is not None
    book, bbo = wire.BookTemplate("linear", "BTCUSDT"), wire.BboTemplate("linear", "BTCUSDT")
    pure_book, pure_bbo = (
        PURE.BookTemplate("linear", "BTCUSDT"),
        PURE.BboTemplate("linear", "BTCUSDT"),
    )
    texts, big = ['["1.5","2"]'], 1_700_000_000_123_456_789
    ints = (big, big, big, 0)  # the frame's u, bybit_seq, ts, cts
    good = [1, 2, big, big, ints, 1, texts, texts, ("1.5", "2"), None, 1]
    assert BOOK_BBO_C(book._head, "", bbo._head, *good) is not None
    for index, bad in (
        (2, 2**64),  # pub_ns: shared
        (4, (big, big, -(2**63) - 1, 0)),  # ts: shared
        (4, (2**63, big, big, 0)),  # u: shared
        (4, (big, big, big, 2**64)),  # cts: the book's only
        (4, (big, 2**64, big, 0)),  # bybit_seq: the bbo's only
        (0, 2**63),  # the book's seq only
        (1, 2**63),  # the bbo's seq only
        (6, ["\u00e9"]),  # the book's texts only
        (9, ("1", "\u00e9")),  # the bbo's ask only
        (10, "\u00e9"),  # the bbo's depth only
        (4, IntsTuple(ints)),  # not an exact tuple: the template unpacks it
    ):
        args = list(good)
        args[index] = bad
        assert BOOK_BBO_C(book._head, "", bbo._head, *args) is None, index
        want = pure_book.render_with_bbo(pure_bbo, *args)
        assert book.render_with_bbo(bbo, *args) == want
    args = list(good)
    args[4] = list(ints)  # a list (the typed template takes none): C refuses it all the same
    assert BOOK_BBO_C(book._head, "", bbo._head, *args) is None
    for short_or_long in ((big, big, big), (*ints, 0)):  # not four ints: no payload at all
        args = list(good)
        args[4] = short_or_long
        assert BOOK_BBO_C(book._head, "", bbo._head, *args) is None
        with pytest.raises(ValueError, match="unpack"):
            book.render_with_bbo(bbo, *args)
    assert BOOK_BBO_C("\u00e9", "", bbo._head, *good) is None
    assert BOOK_BBO_C(book._head, "", "\u00e9", *good) is None
    with pytest.raises(TypeError, match="takes 14 arguments"):
        BOOK_BBO_C(book._head, "", bbo._head, *good[:-1])  # type: ignore[call-arg]


class IntsTuple(tuple[int, ...]):
    """A tuple subclass: the C code takes exact tuples only."""

    __slots__ = ()


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        (["\u0661"], []),  # not ASCII: the f-string encodes it to UTF-8
        ([Text('["1","2"]')], []),  # a str subclass: join takes it, the C code leaves it
        ([b'["1","2"]'], []),  # not a str: join raises, and so does render_texts
        (["x"] * 60, ["y"] * 50 + ["\u00e9"]),  # not ASCII past depth: the C code writes it
    ],
)
def test_texts_the_c_code_leaves_to_the_f_string(bids: Any, asks: list[str]) -> None:
    mine = wire.BookTemplate("linear", "BTCUSDT")
    pure = PURE.BookTemplate("linear", "BTCUSDT")
    try:
        want = pure.render_texts(1, 2, 3, (4, 0, 5, 6), 50, bids, asks)
    except TypeError:
        with pytest.raises(TypeError):
            mine.render_texts(1, 2, 3, (4, 0, 5, 6), 50, bids, asks)
        return
    assert mine.render_texts(1, 2, 3, (4, 0, 5, 6), 50, bids, asks) == want
    if BOOK_C is not None:
        got = BOOK_C(mine._head, "", 1, 2, 3, (4, 0, 5, 6), 50, bids, asks)
        assert got == (want if len(bids) == 60 else None)
        # A sequence that is not a list (the book's lists are lists): the template's way.
        assert BOOK_C(mine._head, "", 1, 2, 3, (4, 0, 5, 6), 50, tuple(bids), asks) is None
        # The frame's ints not an exact tuple of four: the template's way too.
        for ints in ([4, 0, 5, 6], (4, 0, 5), (4, 0, 5, 6, 7), IntsTuple((4, 0, 5, 6))):
            assert BOOK_C(mine._head, "", 1, 2, 3, ints, 50, bids, asks) is None


@needs_c
def test_bad_arguments_raise_rather_than_refuse() -> None:
    assert BOOK_C is not None and BBO_C is not None
    with pytest.raises(TypeError, match="takes 9 arguments"):
        BOOK_C("{", "", 1, 2, 3, (4, 0, 5, 6), 7, [])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="takes 10 arguments"):
        BBO_C("{", 1, 2, 3, 4, 5, None, None, 7)  # type: ignore[call-arg]


@needs_c
def test_no_reference_leaks() -> None:
    """Every reference taken is given back, on the write and the refuse path alike."""
    assert BOOK_C is not None and BBO_C is not None and BOOK_BBO_C is not None
    texts = [f'["{100 + i}.5","{i}"]' for i in range(10)]
    odd = [*texts[:3], "\u00e9"]
    head, big, huge = '{"seq":', 1_700_000_000_123_456_789, 2**70
    bid, ask = ("1.5", "2"), ("3", "4.25")
    ints, bad = (big, big, big, 0), (big, big, huge, 0)  # the frame's (u, bybit_seq, ts, cts)
    values = [texts, odd, *texts, *odd, head, big, huge, bid, ask, *bid, *ask, ints, bad]

    def cycle() -> None:
        assert BOOK_C(head, "", 1, big, big, ints, 5, texts, texts) is not None
        assert BOOK_C(head, '"full"', 1, big, big, ints, 50, texts, odd) is None
        assert BOOK_C(head, "", 1, big, huge, ints, 5, texts, texts) is None
        assert BOOK_C(head, "", 1, big, big, bad, 5, texts, texts) is None
        assert BBO_C(head, 1, big, big, big, big, bid, ask, big, 1) is not None
        assert BBO_C(head, 1, big, big, big, big, None, None, big, "full") is not None
        assert BBO_C(head, 1, big, big, big, big, bid, ("3", "\u00e9"), big, 1) is None
        assert BBO_C(head, 1, big, big, big, huge, bid, ask, big, 1) is None
        with pytest.raises(TypeError):
            BOOK_C(head, "", 1, big, big)  # type: ignore[call-arg]
        pair = BOOK_BBO_C(head, "", head, 1, 2, big, big, ints, 5, texts, texts, bid, ask, 1)
        assert pair is not None and len(pair) == 2
        assert BOOK_BBO_C(head, "", head, 1, 2, big, big, ints, 5, texts, odd, bid, ask, 1) is None
        assert (
            BOOK_BBO_C(head, "", head, 1, 2, big, huge, ints, 5, texts, texts, bid, ask, 1) is None
        )
        assert BOOK_BBO_C(head, "", head, 1, 2, big, big, bad, 5, texts, texts, bid, ask, 1) is None
        assert BOOK_BBO_C(head, "", head, 1, 2, big, big, big, 5, texts, texts, bid, ask, 1) is None
        assert (
            BOOK_BBO_C(
                head, "", head, 1, 2, big, big, ints, 5, texts, texts, bid, ("3", "\u00e9"), 1
            )
            is None
        )
        with pytest.raises(TypeError):
            BOOK_BBO_C(head, "", head, 1)  # type: ignore[call-arg]

    cycle()  # warm up: any first-call allocations
    gc.collect()
    refs = [sys.getrefcount(v) for v in values]
    blocks = sys.getallocatedblocks()
    for _ in range(20_000):
        cycle()
    gc.collect()
    assert [sys.getrefcount(v) for v in values] == refs
    assert sys.getallocatedblocks() - blocks < 100  # 20,000 leaked payloads would show


def test_the_compiled_build_uses_the_c_path() -> None:
    """So the tests above cannot pass with the C code silently off (or on in pure Python)."""
    if not compiled.IS_COMPILED:
        assert BOOK_C is None and BBO_C is None and BOOK_BBO_C is None
        assert not topics.RENDERS_IN_C and not hub_books._IN_C
        assert "mdgw.core._render" not in sys.modules
        return
    module = sys.modules["mdgw.core._render"]
    assert module.__file__ is not None
    assert module.__file__.startswith(str(compiled.BUILDS_DIR))
    assert BOOK_C is module.book and BBO_C is module.bbo and BOOK_BBO_C is module.book_bbo
    assert topics.RENDERS_IN_C and hub_books._IN_C


def _peak(call: Callable[[], object]) -> tuple[int, object]:
    """The most memory ``call`` held at once beyond what it returned, and what it returned."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before - (current - before), result


@needs_c
def test_the_templates_write_one_bytes_object() -> None:
    """What the C path is for: no str of the payload, no joins, no encode on the way (each
    would hold as much memory again as the payload while it is built)."""
    texts = [f'["{65000 + i}.5","{i}.25"]' for i in range(200)]
    book = wire.BookTemplate("linear", "BTCUSDT")
    extra, payload = _peak(lambda: book.render_texts(1, 2, 3, (4, 0, 5, 6), 200, texts, texts))
    assert isinstance(payload, bytes) and len(payload) > 7000
    assert extra < 1000  # the f-string's way holds ~3 times the payload's size beyond it
    bbo = wire.BboTemplate("linear", "BTCUSDT")
    price = "1" * 500
    extra, payload = _peak(lambda: bbo.render(1, 2, 3, 4, 5, (price, price), None, 7, 1))
    assert isinstance(payload, bytes) and len(payload) > 1000
    assert extra < 200


def _raw(seq: int, frame: dict[str, Any], *, indent: bool = False) -> bytes:
    """An envelope of ``frame``; ``indent``: in a form scan_book leaves to msgspec."""
    return oracles.encode_raw(
        EnvelopeKind.DATA,
        ingestor=b"ing",
        category=wire.category_code("linear"),
        conn_id=1,
        seq=seq,
        recv_ns=123,
        frame=orjson.dumps(frame, option=orjson.OPT_INDENT_2 if indent else None),
    )


@needs_c
def test_the_hub_publishes_through_the_c_path() -> None:
    """A delta on a deep book: the hub's publish holds no more memory than the payloads it
    returns (the f-string's way would hold the joins, the str and the stamp besides)."""
    hub = Hub(
        publish_depth=200,
        resync_timeout=5.0,
        resync_min_interval=1.0,
        ingestor_timeout=30.0,
        stale_after=60.0,
        clock_ns=lambda: 1_700_000_000_000_000_000,
    )
    bids = [[f"{60000 - i}.5", f"{i + 1}.125"] for i in range(200)]
    asks = [[f"{60001 + i}.5", f"{i + 1}.125"] for i in range(200)]

    def frame(u: int, kind: str, b: list[list[str]], a: list[list[str]]) -> dict[str, Any]:
        data = {"s": "BTCUSDT", "b": b, "a": a, "u": u, "seq": 10 * u}
        topic = "orderbook.200.BTCUSDT"
        return {"topic": topic, "type": kind, "ts": 1000 + u, "data": data, "cts": 999 + u}

    hub.on_raw(_raw(1, frame(1, "snapshot", bids, asks)), 0.0)
    hub.outbox.clear()
    for u, level in ((2, ["59990.5", "7"]), (3, ["60000.5", "8"])):  # deep, then the best
        raw = _raw(u, frame(u, "delta", [level], []))
        extra, _ = _peak(functools.partial(hub.on_raw, raw, 0.0))
        payloads = [p for _, p in hub.outbox]
        hub.outbox.clear()
        assert len(payloads) == (1 if u == 2 else 2)
        assert len(payloads[0]) > 8000
        # Decoding the frame and the hub's own bookkeeping take a few hundred bytes at once.
        assert extra < 2500, extra
        stamp = {"pub_ns": 1_700_000_000_000_000_000, "recv_ns": 123, "u": u, "ts": 1000 + u}
        for payload in payloads:  # and what they say is the frame's
            assert wire.decode_payload(payload).items() >= stamp.items()
    assert orjson.loads(payloads[1])["bid"] == "60000.5"


@pytest.mark.parametrize("indent", [False, True])
def test_the_hub_publishes_a_depth_1_frame_as_the_templates_render_it(indent: bool) -> None:
    """``orderbook.1`` snapshots through the hub (compiled: book and bbo in one C call, when
    the best changed; the book alone otherwise): the payloads, seqs and order the pure
    templates make from the same frame. Indented, the frames are msgspec's to decode (no
    ``BookFrame.ints``), and the compiled publish boxes the frame's ints itself."""
    clock = 1_700_000_000_000_000_000
    hub = Hub(
        publish_depth=1,
        resync_timeout=5.0,
        resync_min_interval=1.0,
        ingestor_timeout=30.0,
        stale_after=60.0,
        clock_ns=lambda: clock,
    )
    book = PURE.BookTemplate("linear", "BTCUSDT")
    bbo = PURE.BboTemplate("linear", "BTCUSDT")
    tops = [("100.5", "1"), ("100.5", "1"), ("100.5", "2"), ("101", "2"), ("101", "2")]
    bbo_seq = 0
    last = None
    for u, (price, size) in enumerate(tops, start=1):
        data = {"s": "BTCUSDT", "b": [[price, size]], "a": [["102", "3"]], "u": u, "seq": 7 * u}
        frame = {"topic": "orderbook.1.BTCUSDT", "type": "snapshot", "ts": 5000 + u}
        hub.on_raw(_raw(u, {**frame, "data": data, "cts": 4000 + u}, indent=indent), 0.0)
        payloads = [(t, p) for t, p in hub.outbox if not t.startswith(b"status.")]
        hub.outbox.clear()
        book_seq = u  # one book a frame
        texts = [f'["{price}","{size}"]'], ['["102","3"]']
        want = [
            (
                b"book.linear.BTCUSDT.",
                book.render_texts(book_seq, clock, 123, (u, 7 * u, 5000 + u, 4000 + u), 1, *texts),
            )
        ]
        if (price, size) != last:
            bbo_seq += 1
            want.append(
                (
                    b"bbo.linear.BTCUSDT.",
                    bbo.render(
                        bbo_seq, clock, 123, u, 5000 + u, (price, size), ("102", "3"), 7 * u, 1
                    ),
                )
            )
        last = (price, size)
        assert payloads == want, u

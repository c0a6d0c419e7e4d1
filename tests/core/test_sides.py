"""mdgw.core._sides: a book side's update and fast build in C, held to core/book.py as pure Python.

book.py's ``_update_side`` and ``_build_side`` call the C functions when they are importable
(the compiled build) and run their Python otherwise. Here the functions in use are driven
through random deltas and snapshots beside the same functions of book.py's source run as
pure Python, and the three lists of each side must be equal after every step. The compiled
run checks the C code is the one in use; the pure-Python run checks it is absent.
"""

from __future__ import annotations

import gc
import importlib.util
import itertools
import sys
from types import FunctionType, ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw import compiled
from mdgw.core import book
from mdgw.core.book import BookOutcome, OrderBook
from mdgw.core.bybit import Level
from mdgw.testing.examples import examples

UPDATE_C = book._update_side_c
BUILD_C = book._build_side_c
REFILL_C = book._refill_side_c
needs_c = pytest.mark.skipif(
    UPDATE_C is None, reason=f"the C side functions are not in use: {compiled.ACTIVE}"
)


def _pure_book() -> ModuleType:
    """core/book.py's source run as pure Python, without the C functions."""
    path = compiled.source_paths()[compiled.MODULES.index("mdgw.core.book")]
    spec = importlib.util.spec_from_file_location("_pure_mdgw_core_book", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._update_side_c = module._build_side_c = module._refill_side_c = None
    module._REFILL_C = None
    module._REFILL_IN_C = False  # read at each call, as the three above
    assert type(module._update_side) is FunctionType  # interpreted, not compiled
    assert type(module._build_side) is FunctionType
    return module


PURE = _pure_book()
Side = tuple[list[float], list[tuple[str, str]], list[str]]


def lv(price: str, size: str) -> Level:
    """A decoded level, built the way the decoder builds it."""
    return (float(price), price, size, float(size))


# Prices from a small set, so deltas hit, replace and delete the same levels; each price
# spelled several ways ("100.5", "100.50", "100.500"), which must be one level.
TICKS = st.integers(min_value=1, max_value=30)


@st.composite
def prices(draw: st.DrawFn, tick: int | None = None) -> str:
    t = draw(TICKS) if tick is None else tick
    whole, half = divmod(t, 2)
    text = f"{100 + whole}" + (".5" if half else draw(st.sampled_from(["", ".0", "."])))
    if "." in text:
        text += "0" * draw(st.integers(0, 2))
    return text


SIZES = st.sampled_from(["0", "0.0", "0.000", "1", "1.0", "2.5", "0.001", "30", "7.25"])
SIGNS = st.sampled_from([-1.0, 1.0])
DEPTHS = st.integers(min_value=1, max_value=12)


@st.composite
def levels(draw: st.DrawFn, max_size: int = 8) -> list[Level]:
    return [lv(draw(prices()), draw(SIZES)) for _ in range(draw(st.integers(0, max_size)))]


@st.composite
def ordered(draw: st.DrawFn, sign: float) -> list[Level]:
    """A snapshot side as Bybit sends it (best first, each price once, no size 0), or one
    broken at a random place, so both the fast path and its fall-back run."""
    ticks = sorted(draw(st.sets(TICKS, max_size=20)), key=lambda t: t * sign)
    sizes = SIZES.filter(lambda s: float(s) != 0.0)
    side = [lv(draw(prices(t)), draw(sizes)) for t in ticks]
    if side and draw(st.booleans()):
        i = draw(st.integers(0, len(side) - 1))
        side.insert(
            draw(st.integers(0, len(side))), draw(st.sampled_from([side[i], lv(side[i][1], "0")]))
        )
    return side


def snapshot_side(sign: float) -> st.SearchStrategy[list[Level]]:
    return st.one_of(ordered(sign), levels(25))


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[str, list[Level], list[Level]]]:
    out = []
    for _ in range(draw(st.integers(1, 25))):
        if draw(st.integers(0, 5)) == 0:
            out.append(("snapshot", draw(snapshot_side(-1.0)), draw(snapshot_side(1.0))))
        else:
            out.append(("delta", draw(levels()), draw(levels())))
    return out


def _same(got: Side, want: Side) -> None:
    keys, pairs, texts = got
    assert type(keys) is list and type(pairs) is list and type(texts) is list
    assert [k.hex() for k in keys] == [k.hex() for k in want[0]]
    assert all(type(k) is float for k in keys)
    assert pairs == want[1]
    # The pairs hold the very str objects of the levels, as the Python code stores them.
    assert all(g[0] is w[0] and g[1] is w[1] for g, w in zip(pairs, want[1], strict=True))
    assert texts == want[2]


@settings(max_examples=examples(500), deadline=None)
@given(steps(), DEPTHS)
def test_sides_agree_with_book_py_as_pure_python(
    script: list[tuple[str, list[Level], list[Level]]], depth: int
) -> None:
    """Each step through the functions in use and through pure book.py, both sides."""
    mine: dict[float, Side] = {-1.0: ([], [], []), 1.0: ([], [], [])}
    theirs: dict[float, Side] = {-1.0: ([], [], []), 1.0: ([], [], [])}
    for kind, bids, asks in script:
        for sign, side in ((-1.0, bids), (1.0, asks)):
            if kind == "snapshot":
                mine[sign] = book._build_side(side, sign, depth)
                theirs[sign] = PURE._build_side(side, sign, depth)
            else:
                book._update_side(*mine[sign], side, sign, depth)
                PURE._update_side(*theirs[sign], side, sign, depth)
            _same(mine[sign], theirs[sign])
            assert len(mine[sign][0]) <= depth


@needs_c
@settings(max_examples=examples(1500), deadline=None)
@given(st.one_of(ordered(-1.0), ordered(1.0), levels(25)), SIGNS, DEPTHS)
def test_c_build_side_is_the_fast_path_or_none(side: list[Level], sign: float, depth: int) -> None:
    """None exactly where the Python fast path falls back; else its very lists."""
    assert BUILD_C is not None
    got = BUILD_C(side, sign, depth)
    keys = [level[0] * sign for level in side]
    fast = all(a < b for a, b in itertools.pairwise([-float("inf"), *keys])) and all(
        level[3] != 0.0 for level in side
    )
    if not fast:
        assert got is None
        return
    assert got is not None
    _same(got, PURE._build_side(side, sign, depth))


@pytest.mark.parametrize(
    "side",
    [
        [(1.0, "\u0661", "\u0662", 2.0)],  # not ASCII: the f-string's way
        [(1.0, "\u0661", "2", 2.0), (2.0, "2", "\u00e9", 1.0)],
        [(5.0, "5", "1", 1.0), (2, "2", "3", 3)],  # ints for floats, as `key * sign` takes them
    ],
)
def test_texts_of_other_strings(side: list[Level]) -> None:
    for sign in (-1.0, 1.0):
        _same(book._build_side(side, sign, 10), PURE._build_side(side, sign, 10))
        mine: Side = ([], [], [])
        theirs: Side = ([], [], [])
        book._update_side(*mine, side, sign, 10)
        PURE._update_side(*theirs, side, sign, 10)
        _same(mine, theirs)


class Text(str):
    """A str subclass with its own format(): the f-string (and the C code) must use it."""

    def __format__(self, spec: str) -> str:
        return f"<{str.__str__(self)}>"


def test_a_str_subclass_is_formatted_as_the_f_string_does() -> None:
    side = [(1.0, Text("1"), "2", 2.0), (2.0, "2", Text("3"), 3.0)]
    mine: Side = ([], [], [])
    theirs: Side = ([], [], [])
    book._update_side(*mine, side, 1.0, 10)  # type: ignore[arg-type]
    PURE._update_side(*theirs, side, 1.0, 10)
    _same(mine, theirs)
    assert mine[2] == ['["<1>","2"]', '["2","<3>"]']


def test_the_compiled_build_uses_the_c_functions() -> None:
    """So the tests above cannot pass with the C code silently off (or on in pure Python)."""
    if not compiled.IS_COMPILED:
        assert UPDATE_C is None and BUILD_C is None and REFILL_C is None
        assert not book._REFILL_IN_C
        assert "mdgw.core._sides" not in sys.modules
        ob = OrderBook(5)
        ob.apply_snapshot(1, [lv("99", "1")], [lv("101", "1")])
        lists = (ob._bid_keys, ob._bids, ob._bid_json)
        ob.apply_snapshot(2, [lv("98", "1")], [lv("101", "1")])
        assert all(
            a is not b for a, b in zip(lists, (ob._bid_keys, ob._bids, ob._bid_json), strict=True)
        )
        return
    assert UPDATE_C is not None and BUILD_C is not None and REFILL_C is not None
    assert book._REFILL_IN_C
    module = sys.modules["mdgw.core._sides"]
    assert module.__file__ is not None
    assert module.__file__.startswith(str(compiled.BUILDS_DIR))
    # The C update refuses a key that is not a float, where Python's bisect takes an int:
    # so an OrderBook's delta goes through it.
    with pytest.raises(TypeError, match="keys must be floats"):
        book._update_side([1], [("1", "1")], ['["1","1"]'], [lv("2", "1")], 1.0, 5)  # type: ignore[list-item]
    ob = OrderBook(5)
    assert ob.apply_snapshot(1, [lv("99", "1")], [lv("101", "1")]) is BookOutcome.RESET
    ob._ask_keys[0] = 101  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="keys must be floats"):
        ob.apply_delta(2, [], [lv("102", "1")])
    # And a snapshot: build_side's lists are new ones, equal to the Python's.
    side = [lv("101", "1"), lv("100.5", "2")]
    got = BUILD_C(side, -1.0, 5)
    assert got is not None
    _same(book._build_side(side, -1.0, 5), got)
    # A small snapshot is written into the side's own lists (refill_side); a long one, or
    # one out of order, builds new ones.
    ob = OrderBook(50)
    ob.apply_snapshot(1, [lv("99", "1")], [lv("101", "1")])
    lists = (ob._bid_keys, ob._bids, ob._bid_json, ob._ask_keys, ob._asks, ob._ask_json)
    assert ob.apply_snapshot(2, [lv("98", "1")], [lv("101", "2")]) is BookOutcome.RESET
    now = (ob._bid_keys, ob._bids, ob._bid_json, ob._ask_keys, ob._asks, ob._ask_json)
    assert all(a is b for a, b in zip(lists, now, strict=True))
    assert ob.level_texts() == (['["98","1"]'], ['["101","2"]'])
    ob.apply_snapshot(3, [lv(str(90 - i), "1") for i in range(9)], [lv("101", "2")])
    assert ob._bid_keys is not lists[0] and ob._ask_keys is lists[3]
    assert len(ob._bids) == 9


@needs_c
def test_bad_sides_raise_before_changing_anything() -> None:
    assert UPDATE_C is not None and BUILD_C is not None
    keys, pairs, texts = [1.0, 2.0], [("1", "1"), ("2", "1")], ['["1","1"]', '["2","1"]']
    for args, error in [
        (([1.0], pairs, texts), ValueError),  # lengths differ
        ((keys, pairs, tuple(texts)), TypeError),
        (([1.0, "2"], pairs, texts), TypeError),
    ]:
        before = [list(a) for a in args]
        with pytest.raises(error):
            UPDATE_C(*args, [lv("1.5", "1")], 1.0, 5)  # type: ignore[arg-type]
        assert [list(a) for a in args] == before
    for bad_level in [(1.0, "1", "1"), ("1", "1", "1", 1.0), 7]:
        with pytest.raises((TypeError, ValueError)):
            UPDATE_C(keys, pairs, texts, [bad_level], 1.0, 5)  # type: ignore[list-item]
        with pytest.raises((TypeError, ValueError)):
            BUILD_C([bad_level], 1.0, 5)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        UPDATE_C(keys, pairs, texts, [], 1.0, -1)
    assert (keys, pairs, texts) == (
        [1.0, 2.0],
        [("1", "1"), ("2", "1")],
        ['["1","1"]', '["2","1"]'],
    )


@needs_c
def test_failed_allocations_leave_the_lists_of_one_length() -> None:
    """Every allocation of an update made to fail in turn: MemoryError or done, never
    three lists of different lengths (and then the update once more, whole)."""
    testcapi = pytest.importorskip("_testcapi")
    assert UPDATE_C is not None
    delta = [lv("100.5", "1"), lv("99", "0"), lv("101", "2"), lv("100", "3"), lv("103", "1")]
    failed = 0
    for start in range(40):
        # Copies: lists exactly as long as their allocation, so each insert grows them.
        built = PURE._build_side([lv(str(p), "1") for p in range(90, 100)], 1.0, 50)
        side: Side = tuple(list(x) for x in built)  # type: ignore[assignment]
        want: Side = tuple(list(x) for x in built)  # type: ignore[assignment]
        PURE._update_side(*want, delta, 1.0, 50)
        testcapi.set_nomemory(start, start + 1)
        try:
            UPDATE_C(*side, delta, 1.0, 50)
        except MemoryError:
            failed += 1
        finally:
            testcapi.remove_mem_hooks()
        assert len(side[0]) == len(side[1]) == len(side[2])
        UPDATE_C(*side, delta, 1.0, 50)  # replays what went in, finishes what did not
        _same(side, want)
    assert failed > 0


@needs_c
@pytest.mark.parametrize(
    "delta",
    [
        [lv("100.5", "1")],  # insert
        [lv("100.50", "2")],  # replace
        [lv("100.5", "0")],  # delete
        [lv("7", "0")],  # delete of an absent price
        [lv("100.5", "1"), lv("100.5", "2"), lv("100.5", "0"), lv("90", "1"), lv("90", "0")],
    ],
)
def test_no_reference_leaks(delta: list[Level]) -> None:
    """Every reference taken is given back: updates, the cut to depth, builds, errors."""
    assert UPDATE_C is not None and BUILD_C is not None
    base = [lv(str(p), "1") for p in range(95, 105)]
    strings = [s for level in base + delta for s in level[1:3]]

    def cycle() -> None:
        keys, pairs, texts = BUILD_C(base, 1.0, 50) or ([], [], [])
        UPDATE_C(keys, pairs, texts, delta, 1.0, 50)
        UPDATE_C(keys, pairs, texts, delta, 1.0, 3)  # the cut
        assert BUILD_C(delta + base, 1.0, 50) is None
        with pytest.raises(TypeError):
            UPDATE_C([1], [("1", "1")], ["x"], delta, 1.0, 5)

    cycle()  # warm up: any first-call allocations
    gc.collect()
    refs = [sys.getrefcount(s) for s in strings]
    blocks = sys.getallocatedblocks()
    for _ in range(5_000):
        cycle()
    gc.collect()
    assert [sys.getrefcount(s) for s in strings] == refs
    assert sys.getallocatedblocks() - blocks < 100  # 5,000 leaked tuples would show


def _refill_domain(side: list[Level], sign: float) -> bool:
    """Whether refill_side takes the side: build_side's fast path, at most 8 levels of
    exact ASCII strings."""
    keys = [level[0] * sign for level in side]
    return (
        len(side) <= 8
        and all(a < b for a, b in itertools.pairwise([-float("inf"), *keys]))
        and all(level[3] != 0.0 for level in side)
        and all(type(s) is str and s.isascii() for level in side for s in level[1:3])
    )


@needs_c
@settings(max_examples=examples(1500), deadline=None)
@given(
    st.one_of(ordered(-1.0), ordered(1.0), levels(12)),
    st.one_of(ordered(-1.0), ordered(1.0), levels(12)),
    SIGNS,
    DEPTHS,
    DEPTHS,
)
def test_c_refill_side_is_the_built_side_in_the_same_lists(
    before: list[Level], side: list[Level], sign: float, depth_before: int, depth: int
) -> None:
    """From any side the book held (of a snapshot with another sign or depth, too): True and
    build_side's lists, equal item for item, in the very same list objects; or None, and
    the lists not touched, exactly outside its domain."""
    assert REFILL_C is not None
    held = PURE._build_side(before, sign, depth_before)
    copy = tuple(list(x) for x in held)
    got = REFILL_C(*held, side, sign, depth)
    if not _refill_domain(side, sign):
        assert got is None
        assert held == copy
        return
    assert got is True
    want = PURE._build_side(side, sign, depth)
    keys, pairs, texts = held
    assert [k.hex() for k in keys] == [k.hex() for k in want[0]]
    assert all(type(k) is float for k in keys)
    assert pairs == want[1] and texts == want[2]
    assert all(type(p) is tuple for p in pairs)


@needs_c
def test_refill_keeps_a_level_it_holds_and_replaces_a_changed_one() -> None:
    """A level with the same price and size strings is kept, objects and all (what makes
    the refill cheap); a changed size or spelling is the new level's."""
    assert REFILL_C is not None
    keys, pairs, texts = PURE._build_side([lv("101", "1"), lv("100.5", "2")], -1.0, 5)
    kept = (keys[0], pairs[0], texts[0])
    assert REFILL_C(keys, pairs, texts, [lv("101", "1"), lv("100.5", "3")], -1.0, 5) is True
    assert (keys[0], pairs[0], texts[0]) == kept and pairs[0] is kept[1]
    assert pairs[1] == ("100.5", "3") and texts[1] == '["100.5","3"]'
    assert REFILL_C(keys, pairs, texts, [lv("101.0", "1")], -1.0, 5) is True
    assert (keys, pairs, texts) == ([-101.0], [("101.0", "1")], ['["101.0","1"]'])
    assert REFILL_C(keys, pairs, texts, [], -1.0, 5) is True
    assert (keys, pairs, texts) == ([], [], [])


@needs_c
def test_refill_errors_change_nothing() -> None:
    assert REFILL_C is not None
    keys, pairs, texts = [1.0, 2.0], [("1", "1"), ("2", "1")], ['["1","1"]', '["2","1"]']
    for args, error in [
        (([1.0], pairs, texts), ValueError),  # lengths differ
        ((keys, pairs, tuple(texts)), TypeError),
    ]:
        with pytest.raises(error):
            REFILL_C(*args, [lv("1.5", "1")], 1.0, 5)  # type: ignore[arg-type]
    for bad_level in [(1.0, "1", "1"), ("1", "1", "1", 1.0), 7]:
        with pytest.raises((TypeError, ValueError)):
            REFILL_C(keys, pairs, texts, [lv("0.5", "1"), bad_level], 1.0, 5)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        REFILL_C(keys, pairs, texts, [], 1.0, -1)
    # Outside its domain: None, nothing changed.
    for side in ([lv("3", "1"), lv("2", "1")], [lv("3", "0")], [(3.0, "\u0663", "1", 1.0)]):
        assert REFILL_C(keys, pairs, texts, side, 1.0, 5) is None
    assert REFILL_C(keys, pairs, texts, [lv(str(p), "1") for p in range(9)], 1.0, 5) is None
    assert (keys, pairs, texts) == (
        [1.0, 2.0],
        [("1", "1"), ("2", "1")],
        ['["1","1"]', '["2","1"]'],
    )


@needs_c
def test_refill_failed_allocations_leave_the_lists_of_one_length() -> None:
    testcapi = pytest.importorskip("_testcapi")
    assert REFILL_C is not None
    side = [lv("99.5", "1"), lv("100", "2"), lv("101", "3"), lv("102", "1")]
    failed = 0
    for start in range(30):
        built = PURE._build_side([lv("99.5", "1"), lv("100", "7")], 1.0, 50)
        lists: Side = tuple(list(x) for x in built)  # type: ignore[assignment]
        testcapi.set_nomemory(start, start + 1)
        try:
            REFILL_C(*lists, side, 1.0, 50)
        except MemoryError:
            failed += 1
        finally:
            testcapi.remove_mem_hooks()
        assert len(lists[0]) == len(lists[1]) == len(lists[2])
        assert REFILL_C(*lists, side, 1.0, 50) is True
        assert lists == PURE._build_side(side, 1.0, 50)
    assert failed > 0


@needs_c
def test_refill_no_reference_leaks() -> None:
    assert REFILL_C is not None
    a = [lv("100", "1"), lv("101", "2")]
    b = [lv("100", "1"), lv("101.5", "3"), lv("102", "1")]
    odd = [lv("100", "1"), (101.0, "\u0661", "1", 1.0)]
    # The level tuples too: refill_side holds each while it works (a reference each).
    strings = [*a, *b, *odd, *(s for level in a + b + odd for s in level[1:3])]

    def cycle() -> None:
        lists = PURE._build_side(a, 1.0, 50)
        assert REFILL_C(*lists, b, 1.0, 50) is True
        assert REFILL_C(*lists, a, 1.0, 1) is True  # the cut
        assert REFILL_C(*lists, odd, 1.0, 50) is None
        with pytest.raises(TypeError):
            REFILL_C(*lists, [*a, 7], 1.0, 50)  # type: ignore[list-item]

    cycle()
    gc.collect()
    refs = [sys.getrefcount(s) for s in strings]
    blocks = sys.getallocatedblocks()
    for _ in range(5_000):
        cycle()
    gc.collect()
    assert [sys.getrefcount(s) for s in strings] == refs
    assert sys.getallocatedblocks() - blocks < 100

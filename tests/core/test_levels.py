"""mdgw.core._levels: parse_levels' accept path in C, held to core/bybit.py run as pure Python.

The C function may return None for anything (parse_levels then runs its own loop), but when
it returns a list it must be the very list pure-Python parse_levels returns, and it must
return None whenever parse_levels raises. The compiled run checks this (the C module is
built with the compiled hot path); the pure-Python run checks the module is absent.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from types import FunctionType, ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw import compiled
from mdgw.core import bybit
from mdgw.core.errors import ParseError
from mdgw.testing.examples import examples

MAX_LEN = bybit._MAX_NUMBER_LEN
MAX_DIGITS = bybit._MAX_SIGNIFICANT_DIGITS
C_LEVELS = bybit._parse_levels_c
needs_c = pytest.mark.skipif(
    C_LEVELS is None, reason=f"the C accept path is not in use: {compiled.ACTIVE}"
)

SNAPSHOT = (
    b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1786310818229,'
    b'"data":{"s":"BTCUSDT","b":[["65114.20","0.5"],["65113.90","1.5"]],'
    b'"a":[["65114.30","2"],["65115","0.001"]],"u":1,"seq":753843954900},"cts":1786310818227}'
)


def _pure_bybit() -> ModuleType:
    """core/bybit.py's source run as pure Python, without the C accept path."""
    path = compiled.source_paths()[compiled.MODULES.index("mdgw.core.bybit")]
    spec = importlib.util.spec_from_file_location("_pure_mdgw_core_bybit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._parse_levels_c = None  # read at each call: the loop alone runs
    assert type(module.parse_levels) is FunctionType  # interpreted, not compiled
    return module


PURE = _pure_bybit()


class Text(str):
    """A str subclass: parse_levels takes it, the C code leaves it to parse_levels."""


class Levels(list[object]):
    """A list subclass: parse_levels refuses it as raw and as a level."""


def _decimal(digits: int) -> st.SearchStrategy[str]:
    return st.from_regex(rf"[0-9]{{0,{digits}}}(\.[0-9]{{0,{digits}}})?", fullmatch=True)


ALPHABET = "0123456789.-+eE_ naif\x00\u0661\uff15"  # U+0661, U+FF15: digits to str.isdigit
# Strings that are decimals, or nearly: what the C code must get right one rule at a time.
decimals = st.one_of(
    _decimal(12),
    _decimal(25),  # past the 15 significant digits of a price and the length cap
    st.from_regex(r"0{0,25}[1-9]{0,3}0{0,25}(\.0{0,25}[1-9]{0,3}0{0,25})?", fullmatch=True),
    st.text("0123456789", min_size=14, max_size=18),  # 15 digits and no dot: accepted; 16: not
    st.text("0123456789", min_size=38, max_size=42),  # the length cap, for sizes
    st.from_regex(r"[0-9]{0,3}(\.[0-9]{0,3}){2,3}", fullmatch=True),  # "1.2.3"
    st.sampled_from(["", ".", "0", "0.0", "00.000", ".5", "5.", "1e5", "1_0", " 1", "-1"]),
)
texts = st.one_of(
    decimals,
    st.text(ALPHABET, max_size=10),
    st.text(ALPHABET, min_size=38, max_size=44),
)
values = st.one_of(
    texts,
    texts.map(Text),
    st.integers(),
    st.floats(),
    st.none(),
    st.binary(max_size=4),
)
levels = st.one_of(
    st.lists(decimals, min_size=2, max_size=2),
    st.lists(values, min_size=2, max_size=2),
    st.lists(values, max_size=3),
    st.lists(decimals, min_size=2, max_size=2).map(Levels),
    st.tuples(decimals, decimals),
    values,
)
# Levels of decimals in shapes parse_levels refuses (or, with Text, takes): the strings
# being valid more often than not, the shape is what decides.
shapes = st.one_of(
    st.lists(decimals, min_size=2, max_size=2),
    st.lists(decimals, min_size=1, max_size=3),
    st.lists(decimals, min_size=2, max_size=2).map(Levels),
    st.lists(st.one_of(decimals, decimals.map(Text)), min_size=2, max_size=2),
    st.tuples(decimals, decimals),
)
raws = st.one_of(
    st.lists(st.lists(decimals, min_size=2, max_size=2), max_size=5),
    st.lists(shapes, max_size=3),
    st.lists(levels, max_size=5),
    st.lists(st.lists(decimals, min_size=2, max_size=2), max_size=3).map(Levels),
    st.tuples(st.lists(decimals, min_size=2, max_size=2)),
    values,
)


def _check(raw: object) -> None:
    """C's answer is parse_levels' list or None, and None whenever parse_levels raises."""
    assert C_LEVELS is not None
    # Called through *args: CPython then checks the result (a None returned with an
    # exception left set becomes a SystemError), which its direct call path does not.
    fast = C_LEVELS(*(raw, MAX_LEN, MAX_DIGITS))
    try:
        expected = PURE.parse_levels(raw, "data.b", "orderbook.50.BTCUSDT")
    except ParseError:
        assert fast is None, f"the C code accepted what parse_levels refuses: {raw!r}"
        return
    if fast is None:
        assert type(raw) is not list or any(
            type(level) is not list or any(type(v) is not str for v in level) for level in raw
        ), f"the C code refused what parse_levels accepts: {raw!r}"
        return
    assert type(fast) is list and len(fast) == len(expected)
    for got, want in zip(fast, expected, strict=True):
        assert type(got) is tuple and len(got) == 4
        assert got[1] is want[1] and got[2] is want[2]  # the very str objects of raw
        assert type(got[0]) is float and got[0].hex() == want[0].hex()
        assert type(got[3]) is float and got[3].hex() == want[3].hex()


@needs_c
@settings(max_examples=examples(2000), deadline=None)
@given(values, decimals)
def test_c_judges_each_string_as_parse_levels_does(value: object, other: str) -> None:
    """One string at a time, as a price and as a size, beside a valid level."""
    for raw in ([[value, "1"]], [["1", value]], [[value, value]], [["1", "2"], [other, value]]):
        _check(raw)


@needs_c
@settings(max_examples=examples(2000), deadline=None)
@given(raws)
def test_c_returns_parse_levels_list_or_none(raw: object) -> None:
    _check(raw)


@needs_c
@pytest.mark.parametrize(
    "number",
    [
        "0.1",
        "0.3",
        "2.675",
        "999999999999999",  # 15 digits: the C code divides
        "99999999999999.9",
        ".123456789012345",
        "123456789012345.",
        "0.0000000000000000000001",  # 10**-22: the last power of ten it divides by
        "0.00000000000000000000001",  # 10**-23: PyOS_string_to_double's
        "1.0000000000000002",  # 17 digits: PyOS_string_to_double's
        "9007199254740993",
        "0000000000000000000000000000000000001.5",
        "123456789012345000000",
        "0.000",
    ],
)
def test_numbers_are_float_of_the_string(number: str) -> None:
    """Both ways of turning digits into a double give float()'s double, bit for bit."""
    assert C_LEVELS is not None
    got = C_LEVELS([["1", number]], MAX_LEN, MAX_DIGITS)
    assert got is not None
    assert got[0][3].hex() == float(number).hex()
    if float(number) > 0 and len(number.replace(".", "").strip("0")) <= MAX_DIGITS:
        got = C_LEVELS([[number, "1"]], MAX_LEN, MAX_DIGITS)
        assert got is not None
        assert got[0][0].hex() == float(number).hex()


@settings(max_examples=examples(1000), deadline=None)
@given(raws)
def test_parse_levels_agrees_with_its_pure_python_source(raw: object) -> None:
    """The function in use (compiled with the C path, or pure) against the pure source."""
    try:
        expected = PURE.parse_levels(raw, "data.b", "t")
    except ParseError:
        with pytest.raises(ParseError):
            bybit.parse_levels(raw, "data.b", "t")
        return
    got = bybit.parse_levels(raw, "data.b", "t")
    assert [(k.hex(), p, s, q.hex()) for k, p, s, q in got] == [
        (k.hex(), p, s, q.hex()) for k, p, s, q in expected
    ]


def test_the_compiled_build_uses_the_c_accept_path() -> None:
    """So the tests above cannot pass with the C path silently off (or on in pure Python)."""
    if not compiled.IS_COMPILED:
        assert C_LEVELS is None
        assert "mdgw.core._levels" not in sys.modules
        return
    assert C_LEVELS is not None
    module = sys.modules["mdgw.core._levels"]
    assert module.__file__ is not None
    assert module.__file__.startswith(str(compiled.BUILDS_DIR))
    frame = bybit.decode_frame(SNAPSHOT)
    assert isinstance(frame, bybit.BookFrame)
    raw = [["65114.20", "0.5"], ["65113.90", "1.5"]]
    assert C_LEVELS(raw, MAX_LEN, MAX_DIGITS) == frame.bids
    assert frame.bids == [(65114.2, "65114.20", "0.5", 0.5), (65113.9, "65113.90", "1.5", 1.5)]


@needs_c
@pytest.mark.parametrize(
    "raw",
    [
        [["1", "2"], ["2", "3"]],
        [["1", "2"], ["2", "3"], ["0", "1"]],  # refused at the last level
        [["1", "2"], ["2", "3"], ["1", "x"]],
        [["1", "2"], ["2", "3"], ["1"]],
        [["1", "2"], ["2", "3"], 7],
    ],
)
def test_no_reference_leaks(raw: list[object]) -> None:
    """Every reference taken is given back, on the accept and the refuse path alike."""
    assert C_LEVELS is not None
    strings = [v for level in raw if type(level) is list for v in level]
    C_LEVELS(raw, MAX_LEN, MAX_DIGITS)  # warm up: any first-call allocations
    gc.collect()
    refs = [sys.getrefcount(v) for v in strings]
    blocks = sys.getallocatedblocks()
    for _ in range(20_000):
        C_LEVELS(raw, MAX_LEN, MAX_DIGITS)
    gc.collect()
    assert [sys.getrefcount(v) for v in strings] == refs
    assert sys.getallocatedblocks() - blocks < 100  # 20,000 leaked tuples would show


@needs_c
def test_bad_arguments_raise_rather_than_refuse() -> None:
    assert C_LEVELS is not None
    with pytest.raises(TypeError):
        C_LEVELS([], MAX_LEN)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        C_LEVELS([], "40", MAX_DIGITS)  # type: ignore[arg-type]

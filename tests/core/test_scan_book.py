"""mdgw.core._levels.scan_book: _decode_book's accept path in C, held to msgspec and to
core/bybit.py run as pure Python.

scan_book may return None for any frame (msgspec then decodes it), but when it returns a
tuple, msgspec must decode the frame and give the very same values, and parse_levels the
very same levels. And decode_frame must give the same frame, or the same ParseError, with
the C path as without it. The compiled run checks this on generated frames and byte-level
mutations of them; the pure-Python run checks the module is absent.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import random
import sys
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw import compiled
from mdgw.core import bybit, bybit_topics
from mdgw.core.bybit_structs import BookMsg
from mdgw.core.errors import ParseError
from mdgw.testing.bench import frames as bench_frames
from mdgw.testing.examples import examples

MAX_LEN = bybit._MAX_NUMBER_LEN
MAX_DIGITS = bybit._MAX_SIGNIFICANT_DIGITS
SCAN = bybit._decode_book_c
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bybit"
needs_c = pytest.mark.skipif(
    SCAN is None, reason=f"the C decode path is not in use: {compiled.ACTIVE}"
)
_decode_msg = msgspec.json.Decoder(BookMsg).decode


def _pure_bybit() -> ModuleType:
    """core/bybit.py's source run as pure Python, without either C path."""
    path = compiled.source_paths()[compiled.MODULES.index("mdgw.core.bybit")]
    spec = importlib.util.spec_from_file_location("_pure_mdgw_core_bybit_frames", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._parse_levels_c = None  # read at each call: the Python code alone runs
    module._decode_book_c = module._SCAN_BOOK = None
    assert type(module.decode_frame) is FunctionType  # interpreted, not compiled
    return module


PURE = _pure_bybit()

# --------------------------------------------------------------------- generated frames

SYMBOLS = st.one_of(
    st.sampled_from(["BTCUSDT", "ETHUSDT", "1000PEPEUSDT", "BTC-26DEC25-100000-C", "X"]),
    st.from_regex(r"[A-Z0-9]{1,60}", fullmatch=True),  # long symbols, past the str cache
)
DEPTHS = st.sampled_from(["1", "25", "50", "200", "500", "1000", "full", "0", "01", "x"])
# Edge integers: int64's and u64's bounds, the 18 digits C takes, 19 digits it leaves.
INTS = st.one_of(
    st.sampled_from(
        [0, 1, 9, 10, 10**17, 10**18 - 1, 10**18, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -1]
    ),
    st.integers(min_value=0, max_value=2**64 + 5),
    st.integers(min_value=0, max_value=10**13),
)


def _decimal(digits: int) -> st.SearchStrategy[str]:
    return st.from_regex(rf"[0-9]{{0,{digits}}}(\.[0-9]{{0,{digits}}})?", fullmatch=True)


NUMBERS = st.one_of(
    _decimal(8),
    _decimal(20),  # past a price's 15 significant digits
    st.text("0123456789", min_size=14, max_size=18),  # 15 digits and no dot: a price; 16: not
    st.from_regex(r"[1-9][0-9]{13,14}[1-9](\.[0-9]?[1-9])?", fullmatch=True),  # 15-18 digits
    st.text("0123456789.", min_size=38, max_size=42),  # the length cap
    st.sampled_from(["", ".", "0", "0.0", "65000.5", "0.001", "1e5", "-1", " 1", "1.2.3"]),
)
# Valid prices and sizes, cheap to draw: most frames are long lists of these.
VALID_NUMBERS = st.builds(
    lambda whole, fraction, places: f"{whole}.{fraction:0{places}d}" if places else str(whole),
    st.integers(1, 10**7),
    st.integers(0, 999),
    st.sampled_from([0, 0, 3, 4, 6]),
)


def _many_levels(seed: int, n: int) -> list[tuple[str, str]]:
    """A depth-200 snapshot's worth of valid levels, drawn at once (one draw per level
    would make most of the test's time)."""
    rng = random.Random(seed)
    return [
        (f"{rng.randrange(1, 10**6)}.{rng.randrange(100):02d}", str(rng.randrange(1, 10**4)))
        for _ in range(n)
    ]


LEVELS = st.one_of(
    st.lists(st.tuples(VALID_NUMBERS, VALID_NUMBERS), max_size=6),
    st.lists(st.tuples(NUMBERS, NUMBERS), max_size=3),
    st.builds(_many_levels, st.integers(0, 2**32), st.integers(20, 200)),
)


def _pairs(draw: Any, keys: dict[str, str], optional: tuple[str, ...]) -> str:
    """An object of ``keys`` (JSON texts) in random order, each optional key maybe left out."""
    names = [k for k in keys if k not in optional or draw(st.booleans())]
    names = draw(st.permutations(names))
    return "{" + ",".join(f'"{k}":{keys[k]}' for k in names) + "}"


def _text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@st.composite
def book_frames(draw: Any) -> bytes:
    """A book frame as Bybit sends it (and near misses in its values): random key order,
    seq and cts there or not, snapshot or delta, edge numbers, long symbols."""
    symbol = draw(SYMBOLS)
    topic = f"orderbook.{draw(DEPTHS)}.{symbol}"
    if draw(st.integers(0, 9)) == 0:
        topic = draw(st.sampled_from(["orderbook.50.", "orderbook.50.ETHUSDT", "orderbook.1"]))
    sent = symbol if draw(st.integers(0, 9)) else draw(SYMBOLS)
    kind = draw(st.sampled_from(["snapshot", "delta", "snapshot", "delta", "Delta", ""]))
    data = {
        "s": _text(sent),
        "b": _text([list(level) for level in draw(LEVELS)]),
        "a": _text([list(level) for level in draw(LEVELS)]),
        "u": str(draw(INTS)),
        "seq": str(draw(INTS)),
    }
    msg = {
        "topic": _text(topic),
        "type": _text(kind),
        "ts": str(draw(INTS)),
        "data": _pairs(draw, data, ("seq",)),
        "cts": str(draw(INTS)),
    }
    return _pairs(draw, msg, ("cts",)).encode()


# What a byte may be replaced with or preceded by: each breaks the strict form one way.
BYTES = [b" ", b"\n", b'"', b"\\", b"\xc3\xa9", b"\xff", b"\x00", b"0", b"7", b"-", b".", b"e"]
BYTES += [b"E", b"+", b",", b":", b"{", b"}", b"[", b"]", b"x", b"\\u0041", b'"x":1,']


@st.composite
def mutations(draw: Any) -> bytes:
    """A book frame changed at the byte level: a character inserted or replaced, a key
    dropped or repeated, cut short, junk appended, an integer with leading zeros or 19+
    digits."""
    frame = draw(book_frames())
    # The kind of change and its place at random, evenly (Hypothesis favours some values of
    # a range): anywhere, or in the first or last bytes, where the keys, strings and
    # integers are.
    rng = random.Random(draw(st.integers(0, 2**32)))
    how = rng.randrange(10)
    n = len(frame)
    at = rng.choice(
        [rng.randrange(n + 1), rng.randrange(min(n, 120) + 1), n - rng.randrange(min(n, 60) + 1)]
    )
    if how == 0:
        return frame[:at] + rng.choice(BYTES) + frame[at:]
    if how == 1:
        return frame[:at] + rng.choice(BYTES) + frame[at + 1 :]
    if how == 2:
        return frame[:at]
    if how == 3:
        return frame + draw(st.sampled_from([b" ", b"\n", b"}", b"x", b"\x00", b",{}"]))
    if how in (4, 5):  # drop or repeat (with another value) one "key":value
        keys = [b'"topic":', b'"type":', b'"ts":', b'"cts":', b'"data":']
        keys += [b'"s":', b'"b":', b'"a":', b'"u":', b'"seq":']
        key = rng.choice(keys)
        start = frame.find(key)
        if start < 0:
            return frame
        end = _value_end(frame, start + len(key))
        if how == 4:
            if frame[end : end + 1] == b",":
                return frame[:start] + frame[end + 1 :]
            return frame[: start - 1] + frame[end:]  # the last key: drop the comma before it
        other = rng.choice([frame[start:end], key + b'"x"', key + b"7", key + b'[["9","1"]]'])
        return frame[:start] + other + b"," + frame[start:]
    if how == 6:  # leading zeros, or more digits, on an integer
        digits = [
            i
            for i in range(1, len(frame))
            if frame[i - 1 : i] == b":" and frame[i : i + 1].isdigit()
        ]
        if not digits:
            return frame
        i = draw(st.sampled_from(digits))
        return frame[:i] + draw(st.sampled_from([b"0", b"00", b"9" * 19, b"1" * 12])) + frame[i:]
    if how == 7:  # inside the topic, the type or the symbol: the strings C copies
        key = rng.choice([b'"topic":"', b'"type":"', b'"s":"'])
        start = frame.find(key)
        if start < 0:
            return frame
        start += len(key)
        i = rng.randrange(start, frame.index(b'"', start) + 1)
        return frame[:i] + rng.choice(BYTES) + frame[i + rng.randrange(2) :]
    if how == 8:  # beside a bracket, brace, comma or colon
        marks = [i for i, c in enumerate(frame) if c in b"[]{},:"]
        i = rng.choice(marks) + rng.randrange(2) if marks else 0
        return frame[:i] + rng.choice(BYTES) + frame[i + rng.randrange(2) :]
    return frame.replace(b'"b":', b'"b":[["1","2","3"]],"x":', 1)


def _value_end(frame: bytes, i: int) -> int:
    """Where the JSON value at ``frame[i]`` ends (a generated frame: no escapes)."""
    if frame[i : i + 1] == b'"':
        return frame.index(b'"', i + 1) + 1
    if frame[i : i + 1] in (b"[", b"{"):
        depth = 0
        while True:
            c = frame[i : i + 1]
            if c == b'"':
                i = frame.index(b'"', i + 1)
            elif c in (b"[", b"{"):
                depth += 1
            elif c in (b"]", b"}"):
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while frame[i : i + 1].isdigit():
        i += 1
    return i


# --------------------------------------------------------------------------- the checks


def _level_key(levels: list[Any]) -> list[tuple[str, str, str, str]]:
    return [(k.hex(), p, s, q.hex()) for k, p, s, q in levels]


def _outcome(decode: Any, frame: bytes) -> tuple[Any, ...]:
    """decode_frame's frame as plain values (floats as hex), or what it raised."""
    try:
        got = decode(frame)
    except ParseError as exc:
        return (type(exc).__name__, str(exc), exc.reason, exc.topic)
    except Exception as exc:  # not expected of a decoder; still, the same on both paths
        return ("raised", type(exc).__name__, str(exc))
    if not isinstance(got, bybit.BookFrame):
        return (type(got).__name__, got)
    # BookFrame.ints, what the payload's C writer takes: the four fields again, as a plain
    # tuple of plain ints, when scan_book took the frame (compiled); else None.
    if got.ints is not None:
        assert SCAN is not None and decode is bybit.decode_frame, frame
        assert type(got.ints) is tuple and got.ints == (got.u, got.seq, got.ts, got.cts), frame
        assert all(type(value) is int for value in got.ints), frame
    return (
        type(got).__name__,
        got.topic,
        got.symbol,
        got.depth,
        got.snapshot,
        got.u,
        got.seq,
        got.ts,
        got.cts,
        _level_key(got.bids),
        _level_key(got.asks),
    )


def _check(frame: bytes) -> bool:
    """scan_book's answer agrees with msgspec + parse_levels; returns whether it accepted."""
    assert SCAN is not None
    # Called through *args: CPython then checks the result (a None returned with an
    # exception left set becomes a SystemError), which its direct call path does not.
    fast = SCAN(*(frame, MAX_LEN, MAX_DIGITS))
    if fast is not None:
        msg = _decode_msg(frame)  # must not raise: C accepted only what msgspec takes
        want = (msg.topic, msg.type, msg.data.s, (msg.data.u, msg.data.seq, msg.ts, msg.cts))
        topic, kind, symbol, bids, asks, ints = fast
        assert (topic, kind, symbol, ints) == want, frame
        for value in (topic, kind, symbol):
            assert type(value) is str
        assert type(ints) is tuple and len(ints) == 4
        for number in ints:
            assert type(number) is int
        assert type(bids) is list and type(asks) is list
        assert _level_key(bids) == _level_key(PURE.parse_levels(msg.data.b, "data.b", topic))
        assert _level_key(asks) == _level_key(PURE.parse_levels(msg.data.a, "data.a", topic))
        for level in (*bids, *asks):
            assert type(level) is tuple and len(level) == 4
            assert type(level[1]) is str and type(level[2]) is str
        # The decoder keeps scan_book's ints for the payload (BookFrame.ints).
        try:
            decoded = bybit.decode_frame(frame)
        except ParseError:
            pass  # a rule after the scan refused it (the topic, the type, the symbol)
        else:
            assert isinstance(decoded, bybit.BookFrame)
            assert decoded.ints == ints and type(decoded.ints) is tuple
    assert _outcome(bybit.decode_frame, frame) == _outcome(PURE.decode_frame, frame), frame
    return fast is not None


@needs_c
@settings(max_examples=examples(2000), deadline=None)
@given(book_frames())
def test_c_agrees_with_msgspec_on_book_frames(frame: bytes) -> None:
    _check(frame)


@needs_c
@settings(max_examples=examples(2000), deadline=None)
@given(mutations())
def test_c_agrees_with_msgspec_on_mutated_frames(frame: bytes) -> None:
    _check(frame)


@settings(max_examples=examples(1000), deadline=None)
@given(st.one_of(book_frames(), mutations()))
def test_decode_frame_agrees_with_its_pure_python_source(frame: bytes) -> None:
    """The decoder in use (compiled with the C paths, or pure) against the pure source."""
    assert _outcome(bybit.decode_frame, frame) == _outcome(PURE.decode_frame, frame)


# Frames C must leave to msgspec, one rule each, beside one it must take.
GOOD = (
    b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,'
    b'"data":{"s":"BTCUSDT","b":[["1.5","2"]],"a":[],"u":3,"seq":4},"cts":5}'
)


@needs_c
@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"", b""),  # the frame as it is: taken
        (b'"ts":1', b'"ts":01'),  # a leading zero
        (b'"ts":1', b'"ts":-1'),
        (b'"ts":1', b'"ts":1.0'),
        (b'"ts":1', b'"ts":1e0'),
        (b'"ts":1', b'"ts":1234567890123456789'),  # 19 digits: msgspec decides
        (b'"ts":1', b'"ts":"1"'),
        (b'"ts":1', b'"ts":1,"ts":1'),  # a repeated key
        (b'"ts":1,', b""),  # a missing key
        (b'"seq":4', b'"seq":4,"x":1'),  # an unknown key
        (b'"seq":4', b'"seq":4,"s":"BTCUSDT"'),
        (b'"type":"delta"', b'"type": "delta"'),  # whitespace
        (b"BTCUSDT", b"BTC\\u0055SDT"),  # an escape
        (b'"s":"BTCUSDT"', b'"s":"BTC\xc3\xa9"'),  # not ASCII
        (b'"s":"BTCUSDT"', b'"s":"BTC\tUSDT"'),  # a control character
        (b'[["1.5","2"]]', b'[["1.5","2","3"]]'),  # a level of three
        (b'[["1.5","2"]]', b'[["1.5",2]]'),
        (b'[["1.5","2"]]', b'[["0","2"]]'),  # parse_levels' rules
        (b'[["1.5","2"]]', b'[["1.5","2e0"]]'),
        (b'[["1.5","2"]]', b'[["1234567890123456","2"]]'),  # 16 significant digits
        (b'[["1.5","2"]]', b'[["123456789012345.6","2"]]'),
        (b'[["1.5","2"]]', b'[["1.5","2"],]'),
        (b'"a":[]', b'"a":{}'),
        (b'"cts":5}', b'"cts":5} '),  # after the end
        (b'"cts":5}', b'"cts":5}}'),
    ],
)
def test_c_takes_only_the_strict_form(old: bytes, new: bytes) -> None:
    assert SCAN is not None
    frame = GOOD.replace(old, new, 1) if old else GOOD
    assert frame != GOOD or not old
    assert _check(frame) is (not old)


# ----------------------------------------------------------------- the fast path is taken


def _recorded_book_frames() -> list[bytes]:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.startswith(b'{"topic":"orderbook.') and b"orderbook.rpi." not in line:
                out.append(line)
    return out


def _synthetic_book_frames() -> list[bytes]:
    out = []
    for index in range(3):
        script = bench_frames.script(index)
        out.append(script.snapshot(0, 1))
        out.extend(script.delta(k, 1_000 + k) for k in range(1, 20))
    return out


def test_the_compiled_build_takes_the_c_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """On real recorded frames and the benchmarks' synthetic ones: so the tests above cannot
    pass with the C path silently off (or on in pure Python)."""
    if not compiled.IS_COMPILED:
        assert SCAN is None
        assert "mdgw.core._levels" not in sys.modules
        return
    assert SCAN is not None
    recorded, synthetic = _recorded_book_frames(), _synthetic_book_frames()
    assert len(recorded) > 100 and len(synthetic) == 60
    # The decoder reads scan_book from a Final name (a C static, not patchable): count the
    # frames it leaves to msgspec instead, through the global msgspec decoder it reads.
    assert bybit._SCAN_BOOK is SCAN
    fallbacks: list[bytes] = []
    msgspec_decode = bybit._decode_book_msg

    def counted(frame: bytes) -> Any:
        fallbacks.append(frame)
        return msgspec_decode(frame)

    monkeypatch.setattr(bybit, "_decode_book_msg", counted)
    decoded = 0
    for frame in recorded + synthetic:
        try:
            bybit.decode_frame(frame)
        except ParseError:
            continue
        decoded += 1
    # scan_book took every frame decoded, and none of them reached msgspec.
    taken = [frame for frame in recorded + synthetic if SCAN(frame, MAX_LEN, MAX_DIGITS)]
    assert len(taken) == decoded > 100 + len(synthetic)
    assert not set(taken) & set(fallbacks)


def _one_level_frame(topic: str, symbol: str, kind: str = '"type":"snapshot"') -> bytes:
    return (
        f'{{"topic":"{topic}",{kind},"ts":1,"data":{{"s":"{symbol}",'
        '"b":[["1.5","2"]],"a":[["1.6","3"]],"u":7,"seq":9},"cts":1}'
    ).encode()


def test_the_topic_memo_holds_parsed_topics_only_and_stays_bounded() -> None:
    """parse_book_topic's memo (mdgw.core.bybit_topics), as the decoder uses it on both of
    its paths (scan_book's and msgspec's) and in both builds: what parse_book_topic says, on
    a hit as on a miss, no topic it refused, and never more than its bound, past which it
    starts again."""
    memo = bybit_topics._BOOK_TOPIC_MEMO
    bound = bybit_topics._BOOK_TOPIC_MEMO_MAX
    memo.clear()
    for topic in ["orderbook.7x.BTCUSDT", "orderbook.0.BTCUSDT", "orderbook.1.BTC USDT"]:
        for _ in range(2):  # refused each time: a refusal is not kept
            with pytest.raises(ParseError, match="malformed orderbook topic"):
                bybit.decode_frame(_one_level_frame(topic, "BTCUSDT"))
    assert not memo
    # Whitespace after a key: never scan_book's (compiled, msgspec decodes it); its topic is
    # kept all the same.
    spaced = _one_level_frame("orderbook.50.SPACED", "SPACED", '"type": "snapshot"')
    assert SCAN is None or SCAN(spaced, MAX_LEN, MAX_DIGITS) is None
    assert bybit.decode_frame(spaced).depth == 50
    assert memo == {"orderbook.50.SPACED": bybit.OrderbookTopic("SPACED", 50)}
    memo.clear()
    first = _one_level_frame("orderbook.1.S0", "S0")
    for i in range(bound + 10):
        depth = 1 + i % 3 * 24  # 1, 25, 49
        frame = bybit.decode_frame(_one_level_frame(f"orderbook.{depth}.S{i}", f"S{i}"))
        assert (frame.symbol, frame.depth) == (f"S{i}", depth)
        assert len(memo) == (i + 1 if i < bound else i + 1 - bound)
    assert "orderbook.1.S0" not in memo  # the memo started over at the bound
    again = bybit.decode_frame(first)  # a miss
    assert memo["orderbook.1.S0"] == bybit.OrderbookTopic("S0", 1)
    hit = bybit.decode_frame(first)
    assert _outcome(bybit.decode_frame, first) == _outcome(PURE.decode_frame, first)
    assert (again.topic, again.symbol, again.depth) == (hit.topic, hit.symbol, hit.depth)
    assert len(memo) == 11
    assert all(bybit.parse_book_topic(topic) == parsed for topic, parsed in memo.items())
    # A frame whose topic is in the memo still needs data.s to match it.
    with pytest.raises(ParseError, match="does not match"):
        bybit.decode_frame(_one_level_frame("orderbook.1.S0", "S1"))


@needs_c
@pytest.mark.parametrize("frame", [GOOD, GOOD.replace(b'"ts":1', b'"ts":01'), GOOD[:-9]])
def test_no_reference_leaks(frame: bytes) -> None:
    """Every reference taken is given back, on the accept and the refuse path alike."""
    assert SCAN is not None
    SCAN(frame, MAX_LEN, MAX_DIGITS)  # warm up: any first-call allocations
    gc.collect()
    blocks = sys.getallocatedblocks()
    for _ in range(20_000):
        SCAN(frame, MAX_LEN, MAX_DIGITS)
    gc.collect()
    assert sys.getallocatedblocks() - blocks < 100  # 20,000 leaked tuples would show


@needs_c
def test_bad_arguments_raise_rather_than_refuse() -> None:
    assert SCAN is not None
    assert SCAN("not bytes", MAX_LEN, MAX_DIGITS) is None  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SCAN(GOOD, MAX_LEN)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        SCAN(GOOD, "40", MAX_DIGITS)  # type: ignore[arg-type]

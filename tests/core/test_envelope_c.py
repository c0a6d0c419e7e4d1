"""mdgw.core.wire._envelope: decode_raw's accept path in C, held to envelope.py run as pure Python.

The C function may return None for anything (decode_raw then runs its own code), but when it
returns a tuple it must be the very tuple pure-Python decode_raw returns, and it must return
None whenever decode_raw raises. It must also accept every envelope decode_raw accepts once
the ingestor id is in the cache it is given. The compiled run checks this (the C module is
built with the compiled hot path); the pure-Python run checks the module is absent.
"""

from __future__ import annotations

import gc
import importlib.util
import struct
import sys
from types import FunctionType, ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdgw import compiled
from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.errors import WireError
from mdgw.core.wire import envelope
from mdgw.testing.examples import examples
from mdgw.testing.oracles import encode_raw

C_DECODE = envelope._decode_raw_c
needs_c = pytest.mark.skipif(
    C_DECODE is None, reason=f"the C accept path is not in use: {compiled.ACTIVE}"
)
U32 = 2**32 - 1
U64 = 2**64 - 1


def _pure_envelope() -> ModuleType:
    """core/wire/envelope.py's source run as pure Python, without the C accept path."""
    path = compiled.source_paths()[compiled.MODULES.index("mdgw.core.wire.envelope")]
    spec = importlib.util.spec_from_file_location("_pure_mdgw_core_wire_envelope", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._decode_raw_c = None  # read at each call: the Python code alone runs
    assert type(module.decode_raw) is FunctionType  # interpreted, not compiled
    return module


PURE = _pure_envelope()


class Raw(bytes):
    """A bytes subclass: decode_raw takes it, the C code leaves it to decode_raw."""


# A few ids that come back again and again (so they are cached), some that do not, and
# some that are not UTF-8 or have a NUL or are the longest allowed.
_POOL = [b"ing", b"ingestor-a", "é".encode(), b"x" * 255, b"a\x00b", b"\xff\xfe\xfd", b"\xc3"]
ids = st.one_of(
    st.sampled_from(_POOL),
    st.binary(min_size=1, max_size=8),
    st.text(min_size=1, max_size=12).map(str.encode).filter(lambda b: len(b) <= 255),
)
# decode_raw caches the ids of the pool that decode, so that the C code, given that cache,
# judges the envelopes below that carry them (it refuses any envelope whose id is not cached).
for _raw_id in _POOL:
    try:
        PURE.decode_raw(encode_raw(3, ingestor=_raw_id, category=0, conn_id=0, seq=0, recv_ns=0))
    except WireError:
        pass
assert len(PURE._INGESTOR_IDS) == 5

valid = st.builds(
    encode_raw,
    st.integers(0, 3),
    ingestor=ids,
    category=st.integers(0, len(CATEGORIES) - 1),
    conn_id=st.one_of(st.integers(0, U32), st.sampled_from([0, 1, U32])),
    seq=st.one_of(st.integers(0, U64), st.sampled_from([0, 1, 2**63, U64])),
    recv_ns=st.one_of(st.integers(0, U64), st.sampled_from([0, 2**63 - 1, U64])),
    frame=st.one_of(st.binary(max_size=300), st.just(b"")),
)
# Any header byte values at all, and an id of any length after it.
headers = st.builds(
    lambda v, k, c, n, conn, seq, ns, rest: (
        struct.pack("<BBBBIQQ", v, k, c, n, conn, seq, ns) + rest
    ),
    st.one_of(st.just(1), st.integers(0, 255)),
    st.one_of(st.integers(0, 5), st.integers(0, 255)),
    st.one_of(st.integers(0, len(CATEGORIES)), st.integers(0, 255)),
    st.one_of(st.integers(0, 4), st.integers(0, 255)),
    st.integers(0, U32),
    st.integers(0, U64),
    st.integers(0, U64),
    st.one_of(st.sampled_from([b"ing", b"ing{}", b"\xff\xfe\xfd", b""]), st.binary(max_size=40)),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid envelope with a few bytes changed, or cut short, or with bytes added."""
    msg = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, min(len(msg) - 1, HEADER_END + 8)))
        msg[i] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(msg))))
    return bytes(msg[:cut]) + draw(st.binary(max_size=3))


HEADER_END = envelope.HEADER_SIZE
envelopes = st.one_of(
    valid,
    valid.flatmap(lambda m: st.integers(0, len(m)).map(lambda n: m[:n])),  # truncated
    headers,
    mutated(),
    st.binary(max_size=60),
)


def _outcome(decode: object, msg: bytes) -> object:
    assert callable(decode)
    try:
        return decode(msg)
    except WireError as exc:
        return ("raised", type(exc), str(exc))


def _check_c(msg: bytes, cache: dict[bytes, str]) -> None:
    """C's answer, given this cache, is pure decode_raw's tuple or None, and None when it raises."""
    assert C_DECODE is not None
    before = dict(cache)
    # Called through *args: CPython then checks the result (a None returned with an
    # exception left set becomes a SystemError), which its direct call path does not.
    fast = C_DECODE(*(msg, cache, PURE._CATEGORIES))
    assert cache == before  # the C code never changes the cache
    expected = _outcome(PURE.decode_raw, msg)
    if fast is None:
        return
    assert type(expected) is tuple and expected[0] != "raised", (
        f"the C code accepted what decode_raw refuses: {msg!r} ({expected})"
    )
    assert type(fast) is tuple
    assert fast == expected
    assert [type(v) for v in fast] == [type(v) for v in expected]
    kind, ingestor, category, *_, frame = fast
    assert ingestor is cache[msg[HEADER_END : HEADER_END + msg[3]]]  # the cache's very str
    assert category is PURE._CATEGORIES[msg[2]]  # the very str of the tuple given
    assert type(frame) is bytes and type(kind) is int


@needs_c
@settings(max_examples=examples(2000), deadline=None)
@given(envelopes)
def test_c_returns_decode_raws_tuple_or_none(msg: bytes) -> None:
    """With the pure module's own cache: before decode_raw has seen the id, and after."""
    _check_c(msg, PURE._INGESTOR_IDS)
    expected = _outcome(PURE.decode_raw, msg)  # caches the id when it decodes
    assert C_DECODE is not None
    fast = C_DECODE(msg, PURE._INGESTOR_IDS, PURE._CATEGORIES)
    if type(expected) is tuple and expected[0] != "raised":
        assert fast == expected, f"the C code refused a cached id's envelope: {msg!r}"
    else:
        assert fast is None
    _check_c(msg, PURE._INGESTOR_IDS)


@needs_c
@settings(max_examples=examples(500), deadline=None)
@given(envelopes, st.lists(ids, max_size=20))
def test_c_with_caches_of_any_size(msg: bytes, others: list[bytes]) -> None:
    """Small caches are scanned and large ones hashed: the answer is the same."""
    cache = {raw: raw.decode() for raw in others if _utf8(raw)}
    _check_c(msg, cache)
    raw_id = msg[HEADER_END : HEADER_END + msg[3]] if len(msg) >= HEADER_END else b""
    if _utf8(raw_id):
        cache[raw_id] = raw_id.decode()  # what decode_raw would have cached
        _check_c(msg, cache)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _header(
    version: int = 1, kind: int = 0, category: int = 1, id_len: int = 3, conn: int = 1
) -> bytes:
    return struct.pack("<BBBBIQQ", version, kind, category, id_len, conn, 1, 2)


@needs_c
@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (b"", "shorter"),
        (_header()[:-1], "shorter"),
        ((_header() + b"ing")[: HEADER_END - 1], "shorter"),
        (_header(version=0) + b"ing", "version"),
        (_header(version=2) + b"ing", "version"),
        (_header(kind=4) + b"ing", "kind"),
        (_header(kind=255) + b"ing", "kind"),
        (_header(category=len(CATEGORIES)) + b"ing", "category"),
        (_header(category=255) + b"ing", "category"),
        (_header(id_len=0) + b"ing", "empty ingestor"),
        (_header(id_len=4) + b"ing", "truncated"),
        (_header(id_len=10) + b"ing", "truncated"),
        (_header() + b"\xff\xfe\xfd", "UTF-8"),
    ],
)
def test_c_refuses_what_decode_raw_refuses(msg: bytes, reason: str) -> None:
    """Each of decode_raw's refusals, with "ing" cached: the C code leaves them all to it."""
    assert C_DECODE is not None
    with pytest.raises(WireError, match=reason):
        PURE.decode_raw(msg)
    cache = {b"ing": "ing", b"in": "in", b"\xff\xfe": "\ufffd"}  # a bad prefix, cached
    assert C_DECODE(msg, cache, PURE._CATEGORIES) is None
    assert C_DECODE(msg, cache | {bytes([i]): str(i) for i in range(20)}, PURE._CATEGORIES) is None


@needs_c
def test_c_leaves_what_it_does_not_know_to_decode_raw() -> None:
    assert C_DECODE is not None
    msg = encode_raw(0, ingestor=b"ing", category=1, conn_id=7, seq=8, recv_ns=9, frame=b"{}")
    cache = {b"ing": "ing"}
    assert C_DECODE(msg, cache, PURE._CATEGORIES) == (0, "ing", "linear", 7, 8, 9, b"{}")
    assert C_DECODE(Raw(msg), cache, PURE._CATEGORIES) is None
    assert C_DECODE(bytearray(msg), cache, PURE._CATEGORIES) is None  # type: ignore[arg-type]
    assert C_DECODE(msg, {}, PURE._CATEGORIES) is None  # an id it has not seen
    for near in ([b"ingo", b"in", b"inh", b"Ing"], [bytes([i]) * 3 for i in range(20)]):
        # Ids that start alike, or are as long: scanned (a few) and hashed (many).
        assert C_DECODE(msg, {k: k.decode() for k in near}, PURE._CATEGORIES) is None
        assert C_DECODE(msg, {k: k.decode() for k in near} | cache, PURE._CATEGORIES) == (
            C_DECODE(msg, cache, PURE._CATEGORIES)
        )
    assert C_DECODE(msg, {b"ing": b"ing"}, PURE._CATEGORIES) is None  # type: ignore[dict-item]
    assert C_DECODE(msg, {Raw(b"ing"): "ing"}, PURE._CATEGORIES) is None  # exact keys only
    assert C_DECODE(msg, cache, ()) is None
    assert C_DECODE(msg, cache, ("spot",)) is None  # category 1 is not in this tuple
    with pytest.raises(TypeError):
        C_DECODE(msg, cache)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        C_DECODE(msg, list(cache), PURE._CATEGORIES)  # type: ignore[arg-type]


@settings(max_examples=examples(1000), deadline=None)
@given(st.one_of(envelopes, envelopes.map(Raw)))
def test_decode_raw_agrees_with_its_pure_python_source(msg: bytes) -> None:
    """The function in use (compiled with the C path, or pure) against the pure source."""
    for _ in range(2):  # the second time with the id cached
        assert _outcome(envelope.decode_raw, msg) == _outcome(PURE.decode_raw, msg)


def test_the_compiled_build_uses_the_c_accept_path() -> None:
    """So the tests above cannot pass with the C path silently off (or on in pure Python)."""
    if not compiled.IS_COMPILED:
        assert C_DECODE is None
        assert "mdgw.core.wire._envelope" not in sys.modules
        return
    assert C_DECODE is not None
    module = sys.modules["mdgw.core.wire._envelope"]
    assert module.__file__ is not None
    assert module.__file__.startswith(str(compiled.BUILDS_DIR))
    msg = encode_raw(3, ingestor=b"c-path", category=0, conn_id=0, seq=0, recv_ns=5)
    assert envelope.decode_raw(msg) == (3, "c-path", "spot", 0, 0, 5, b"")
    # decode_raw cached the id, so the C code now takes this envelope itself.
    assert C_DECODE(msg, envelope._INGESTOR_IDS, envelope._CATEGORIES) == envelope.decode_raw(msg)


@needs_c
@pytest.mark.parametrize(
    "msg",
    [
        encode_raw(
            0, ingestor=b"ing", category=1, conn_id=U32, seq=U64, recv_ns=2**40, frame=b"{}"
        ),
        encode_raw(2, ingestor=b"ing", category=1, conn_id=1, seq=5, recv_ns=6),
        encode_raw(0, ingestor=b"new", category=1, conn_id=1, seq=5, recv_ns=6),  # refused
        encode_raw(0, ingestor=b"ing", category=1, conn_id=1, seq=5, recv_ns=6)[:-1],  # refused
    ],
)
@pytest.mark.parametrize("others", [0, 20])  # the cache scanned, or hashed
def test_no_reference_leaks(msg: bytes, others: int) -> None:
    """Every reference taken is given back, on the accept and the refuse path alike."""
    assert C_DECODE is not None
    cache = {b"ing": "".join(["in", "g"])} | {b"%d" % i: str(i) for i in range(others)}
    categories = tuple("".join([c, ""]) for c in CATEGORIES)
    watched = [msg, cache[b"ing"], *categories, cache, categories]
    C_DECODE(msg, cache, categories)  # warm up: any first-call allocations
    gc.collect()
    refs = [sys.getrefcount(v) for v in watched]
    blocks = sys.getallocatedblocks()
    for _ in range(20_000):
        C_DECODE(msg, cache, categories)
    gc.collect()
    assert [sys.getrefcount(v) for v in watched] == refs
    assert sys.getallocatedblocks() - blocks < 100  # 20,000 leaked tuples would show

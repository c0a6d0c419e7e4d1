"""``make bench-peers``: mdgw's builder core against cryptofeed's Bybit handler, in one process.

The same Bybit frames go through three paths, interleaved round by round (the order rotates
every round), with no sockets and no event loop:

- ``cryptofeed BookZMQ``: cryptofeed's ``Bybit.message_handler`` (JSON with Decimals, its
  ``_book``, its ``OrderBook``) and the payload its ``BookZMQ`` backend builds for each
  update (``to_dict`` and the ``"<key> <json>"`` string its writer sends), kept in a list
  instead of sent. ``BookZMQ(snapshots_only=True)``: the configuration that publishes what
  mdgw publishes, a book per update (by default it publishes each delta as received and a
  book every 1,000 updates, which leaves every consumer to keep its own book);
- ``cryptofeed bare``: the same handler with a callback that reads the top 25 levels of
  each side and builds nothing;
- ``mdgw``: ``Hub.on_raw`` on the raw envelope the ingestor would send (envelope decode,
  frame decode, ``u`` check, book apply, top-25 ``book`` payload and ``bbo``), the build in
  use (compiled or pure Python, named in the output).

cryptofeed runs with its defaults (``max_depth=0``: with ``max_depth=25`` its book keeps only
25 levels a side and goes wrong once a level deeper than that moves up). Its coroutines are
driven with ``send(None)``: they never wait, so no event loop cost is counted for it.

Data: the benchmark's synthetic depth-50 deltas (``mdgw.testing.bench.frames``: 100 symbols,
deltas of 1-5 levels; snapshots are fed before the clock starts) and the real Bybit
recordings with order-book frames and a permissive licence, each from ``tests/fixtures/bybit``
(vendored, see its NOTICE) or, for those not vendored there (whole or at all),
``../shared/bybit-recordings`` when it exists (files from cryptofeed's AGPL ``v3`` branch
are never read). A recording is replayed whole (snapshot and deltas,
timed) as many times as it takes to reach ``--min-frames``, each pass new data
(:func:`fresh_passes`: ``u``, ``ts``, ``cts`` and ``seq`` shifted so that a pass continues the
one before), and only each symbol's deepest topic (:func:`deepest_only`).

Every run is checked: after it, each path's books must equal a naive replay of the same
frames (top 25 per side), else the row says how many were wrong; the last column says how
many frames changed a book (naive replay) and how many books each path put out.
Run with the peers venv: ``var/peers-venv/bin/python scripts/bench_peers.py`` (what
``make bench-peers`` does). A script rather than a module of :mod:`mdgw.testing`: it runs
in that venv, beside cryptofeed, and cryptofeed is no dependency of mdgw.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import mdgw  # selects the compiled build, see mdgw.compiled
from mdgw.core import wire
from mdgw.core.hub import Hub
from mdgw.testing.bench import frames

ROOT = Path(__file__).resolve().parents[1]

TOP = 25
RECORDING_DIRS = (
    ROOT / "tests" / "fixtures" / "bybit",
    ROOT.parent / "shared" / "bybit-recordings",
)
# Order-book recordings a replay can use; never the AGPL cryptofeed v3 files.
RECORDINGS = (
    "fastmm_v5-spot-TESTNET_orderbook50-orderbook1-trades_2026-09-13.jsonl",
    "nautilus_bybit-history-dump_v5-linear_orderbook500_XRPUSDT_2024-12-01.jsonl",
    "cryptofeed-pr1085_v5-linear_orderbook1_2025-06-13.jsonl",
    "cryptofeed-pr1085_v5-spot_orderbook1_2025-06-13.jsonl",
    "gocryptotrader_v5-spot_orderbook50_2024-11-08.jsonl",
)
PATHS = ("mdgw", "cryptofeed BookZMQ", "cryptofeed bare")


@dataclass
class Dataset:
    name: str
    category: str  # spot or linear: the Bybit endpoint the frames came from
    primer: list[str]  # frames fed before the clock starts (snapshots)
    frames: list[str]  # the timed frames, in order
    note: str = ""


@dataclass
class Outcome:
    per_frame_us: list[float] = field(default_factory=list)
    wrong: int = 0
    checked: int = 0
    published: int = 0  # books the path put out in its last run (mdgw: book payloads)


# --------------------------------------------------------------------------------- data


def synthetic(symbols: int, deltas: int) -> Dataset:
    scripts = [frames.script(i) for i in range(symbols)]
    primer = [s.snapshot(0, 1).decode() for s in scripts]
    out: list[str] = []
    k = 0
    while len(out) < deltas:
        k += 1
        out.extend(s.delta(k, 1_000 + k).decode() for s in scripts)
    del out[deltas:]
    return Dataset(
        f"synthetic depth-50 deltas ({symbols} symbols)",
        "linear",
        primer,
        out,
        f"{deltas:,} deltas of 1-5 levels",
    )


def recording_path(name: str) -> Path | None:
    """The first of RECORDING_DIRS that holds ``name``: a file is looked up on its own, as
    only some recordings are vendored in tests/fixtures/bybit."""
    for d in RECORDING_DIRS:
        if (d / name).is_file():
            return d / name
    return None


def recordings(min_frames: int) -> list[Dataset]:
    out = []
    for name in RECORDINGS:
        path = recording_path(name)
        if path is None:
            continue
        book = [
            line
            for line in path.read_text().splitlines()
            if line.startswith('{"topic":"orderbook.')
        ]
        book, left_out = deepest_only(book)
        if not book:
            continue
        passes = max(1, -(-min_frames // len(book)))
        category = "spot" if "spot" in name else "linear"
        out.append(
            Dataset(
                f"real: {name.removesuffix('.jsonl')}",
                category,
                [],
                fresh_passes(book, passes),
                f"{len(book)} frames x {passes} passes"
                + (f" ({left_out} shallower frames left out)" if left_out else ""),
            )
        )
    return out


def deepest_only(book: list[str]) -> tuple[list[str], int]:
    """The frames of each symbol's deepest topic, and how many were left out. A symbol at two
    depths (``orderbook.1`` beside ``orderbook.50``) is one book to cryptofeed, which lets each
    level-1 snapshot replace its deep book, and two to mdgw, which publishes the deep one and
    fuses level 1 into the ``bbo``: no book could be checked against both."""
    depth: dict[str, int] = {}
    topics = [json.loads(line)["topic"] for line in book]
    for topic in topics:
        _, d, sym = topic.split(".", 2)
        depth[sym] = max(depth.get(sym, 0), int(d))
    kept = [
        line
        for line, topic in zip(book, topics, strict=True)
        if int(topic.split(".")[1]) == depth[topic.split(".", 2)[2]]
    ]
    return kept, len(book) - len(kept)


def fresh_passes(book: list[str], passes: int) -> list[str]:
    """``passes`` replays of a recording's order-book frames, each one new data.

    The same message again (same ``u`` and ``ts``) is a duplicate that mdgw's arbiter drops
    at once while cryptofeed applies it: replaying a recording as it is would measure mdgw
    dropping copies. So pass ``k`` shifts every ``u`` by ``k`` times its topic's span in the
    recording (``max u - min u + 1``) and ``ts``, ``cts`` and ``seq`` by ``k`` times theirs:
    pass ``k`` continues pass ``k - 1`` (its first frame of a topic, a snapshot, is newer
    than anything pass ``k - 1`` held; deltas keep their contiguous ``u``). Each topic's
    first frame must be a snapshot, else no shift can make the replay continue."""
    msgs = [json.loads(line) for line in book]
    u_span: dict[str, int] = {}
    first: dict[str, str] = {}
    for topic, lo, hi in _spans(msgs, lambda m: m["topic"], lambda m: m["data"]["u"]):
        u_span[topic] = hi - lo + 1
    for m in msgs:
        first.setdefault(m["topic"], m["type"])
    if any(kind != "snapshot" for kind in first.values()):
        raise ValueError("a topic's first frame is not a snapshot: passes cannot continue")
    spans = {}
    for key, get in (
        ("ts", lambda m: m["ts"]),
        ("cts", lambda m: m.get("cts")),
        ("seq", lambda m: m["data"].get("seq")),
    ):
        values = [v for v in map(get, msgs) if v is not None]
        spans[key] = max(values) - min(values) + 1 if values else 0
    out = []
    for k in range(passes):
        for original in msgs:
            m = json.loads(json.dumps(original))
            data = m["data"]
            data["u"] += k * u_span[m["topic"]]
            m["ts"] += k * spans["ts"]
            if "cts" in m:
                m["cts"] += k * spans["cts"]
            if "seq" in data:
                data["seq"] += k * spans["seq"]
            out.append(json.dumps(m, separators=(",", ":")))
    return out


def _spans(
    msgs: list[dict[str, Any]], key: Callable[[Any], str], get: Callable[[Any], int]
) -> list[tuple[str, int, int]]:
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    for m in msgs:
        k, v = key(m), get(m)
        lo[k] = min(lo.get(k, v), v)
        hi[k] = max(hi.get(k, v), v)
    return [(k, lo[k], hi[k]) for k in lo]


Books = dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]


def truth(ds: Dataset) -> tuple[Books, int]:
    """Naive replay: symbol -> top-25 bids and asks as (price, size) strings, and how many of
    the timed frames changed their book (a level added, moved, resized or removed)."""
    books: dict[str, tuple[dict[Decimal, tuple[str, str]], dict[Decimal, tuple[str, str]]]] = {}
    changing = 0
    for i, raw in enumerate([*ds.primer, *ds.frames]):
        msg = json.loads(raw)
        data = msg["data"]
        before = books.get(data["s"])
        if msg["type"] == "snapshot":
            books[data["s"]] = ({}, {})
        sides = books[data["s"]]
        before = None if before is None else (dict(before[0]), dict(before[1]))
        for side, key in ((sides[0], "b"), (sides[1], "a")):
            for price, size in data[key]:
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, size)
        changing += i >= len(ds.primer) and before != sides
    top = {
        sym: (
            [bids[k] for k in sorted(bids, reverse=True)[:TOP]],
            [asks[k] for k in sorted(asks)[:TOP]],
        )
        for sym, (bids, asks) in books.items()
    }
    return top, changing


# -------------------------------------------------------------------------------- paths


class MdgwPath:
    """``Hub.on_raw`` over envelopes, outbox cleared every 256 frames as the shell's batch."""

    def __init__(self, ds: Dataset) -> None:
        enc = wire.RawEncoder("bench", ds.category)
        self.category = ds.category
        self.primer = [enc.conn_up(1, 0)] + [
            enc.data(1, i + 1, 0, f.encode()) for i, f in enumerate(ds.primer)
        ]
        first = len(ds.primer) + 1
        self.envelopes = [enc.data(1, first + i, 0, f.encode()) for i, f in enumerate(ds.frames)]

    def run(self) -> tuple[float, Hub]:
        hub = Hub(
            publish_depth=TOP,
            resync_timeout=5.0,
            resync_min_interval=1.0,
            ingestor_timeout=60.0,
            stale_after=60.0,
            clock_ns=time.time_ns,
        )
        on_raw = hub.on_raw
        for env in self.primer:
            on_raw(env, 1.0)
        hub.outbox.clear()
        self.primed = hub.stats.books_out
        outbox, latencies = hub.outbox, hub.latencies
        gc.collect()
        started = time.perf_counter_ns()
        for i, env in enumerate(self.envelopes):
            on_raw(env, 1.0)
            if i & 255 == 255:
                outbox.clear()
                latencies.clear()
        elapsed = time.perf_counter_ns() - started
        return elapsed / 1000 / len(self.envelopes), hub

    def check(self, hub: Hub, expected: dict[str, Any]) -> tuple[int, int]:
        wrong = 0
        books = {}
        for _topic, payload in hub.snapshot(b"book."):
            msg = json.loads(payload)
            books[msg["symbol"]] = (msg["bids"], msg["asks"])
        for sym, (bids, asks) in expected.items():
            got = books.get(sym)
            if got is None or got != ([list(x) for x in bids], [list(x) for x in asks]):
                wrong += 1
        if any(e[0] == "malformed_frame" for e in hub.events) or hub.stats.resyncs:
            wrong += 1
        return wrong, len(expected)

    def published(self, hub: Hub) -> int:
        return int(hub.stats.books_out - self.primed)


class CryptofeedPath:
    """cryptofeed's Bybit feed with one L2_BOOK callback: BookZMQ's payload, or a top-25 read."""

    def __init__(self, ds: Dataset, *, payload: bool) -> None:
        self.ds = ds
        self.payload = payload
        self.conn = type("Conn", (), {"address": f"wss://x/v5/public/{ds.category}", "uuid": "b"})()
        symbols = {json.loads(f)["data"]["s"] for f in ds.primer + ds.frames[:2000]}
        _register_symbols(symbols, ds.category)

    def _feed(self, sink: list[Any]) -> Any:
        from cryptofeed.backends.zmq import BookZMQ
        from cryptofeed.defines import L2_BOOK
        from cryptofeed.exchanges import Bybit

        if self.payload:

            class Publisher(BookZMQ):  # type: ignore[misc]
                async def write(self, data: dict[str, Any]) -> None:
                    # ZMQCallback.writer's formatting, without the queue and the socket.
                    sink.append(
                        f"{data['exchange']}-{self.key}-{data['symbol']} {_yjson.dumps(data)}"
                    )

            callback: Any = Publisher(snapshots_only=True)
        else:

            async def callback(book: Any, receipt_timestamp: float) -> None:
                sink.append((book.book.bids.to_list()[:TOP], book.book.asks.to_list()[:TOP]))

        return Bybit(callbacks={L2_BOOK: callback})

    def run(self) -> tuple[float, Any]:
        sink: list[Any] = []
        feed = self._feed(sink)
        handler, conn = feed.message_handler, self.conn
        for f in self.ds.primer:
            _drive(handler(f, conn, 1.0))
        sink.clear()
        frames_ = self.ds.frames
        published = 0
        gc.collect()
        started = time.perf_counter_ns()
        for i, f in enumerate(frames_):
            coro = handler(f, conn, 1.0)
            try:
                coro.send(None)
            except StopIteration:
                pass
            else:
                raise RuntimeError("cryptofeed's handler waited")
            if i & 255 == 255:
                published += len(sink)
                sink.clear()
        elapsed = time.perf_counter_ns() - started
        self.last_published = published + len(sink)
        return elapsed / 1000 / len(frames_), feed

    def check(self, feed: Any, expected: dict[str, Any]) -> tuple[int, int]:
        wrong = 0
        for sym, (bids, asks) in expected.items():
            std = _std_symbol(feed, sym, self.ds.category)
            book = feed._l2_book.get(std)
            if book is None:
                wrong += 1
                continue
            got_b = [(Decimal(p), Decimal(s)) for p, s in book.book.bids.to_list()[:TOP]]
            got_a = [(Decimal(p), Decimal(s)) for p, s in book.book.asks.to_list()[:TOP]]
            want_b = [(Decimal(p), Decimal(s)) for p, s in bids]
            want_a = [(Decimal(p), Decimal(s)) for p, s in asks]
            wrong += got_b != want_b or got_a != want_a
        return wrong, len(expected)

    def published(self, feed: Any) -> int:
        return self.last_published


def _drive(coro: Any) -> None:
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("cryptofeed's handler waited")


_QUOTES = ("USDT", "USDC")


def _register_symbols(symbols: Iterable[str], category: str) -> None:
    """cryptofeed reads Bybit's instruments over HTTP at start: give it ours instead."""
    from cryptofeed.defines import BYBIT
    from cryptofeed.exchanges import Bybit
    from cryptofeed.symbols import Symbols

    known, info = Symbols.get(BYBIT) if Symbols.populated(BYBIT) else ({}, {})
    items = []
    for sym in symbols:
        quote = next(q for q in _QUOTES if sym.endswith(q))
        item = {
            "symbol": sym,
            "baseCoin": sym.removesuffix(quote),
            "quoteCoin": quote,
            "priceFilter": {"tickSize": "0.1"},
        }
        if category == "linear":
            item["contractType"] = "LinearPerpetual"
        items.append(item)
    syms, more = Bybit._parse_symbol_data([{"result": {"list": items}}])
    merged_info = dict(info)
    for k, v in more.items():
        merged_info.setdefault(k, {}).update(v)
    Symbols.set(BYBIT, {**known, **syms}, merged_info)


def _std_symbol(feed: Any, sym: str, category: str) -> str:
    pair = feed.convert_to_spot_name(feed, sym) if category == "spot" else sym
    return str(feed.exchange_symbol_to_std_symbol(pair))


try:
    from yapic import json as _yjson  # cryptofeed's JSON library, as its ZMQ writer uses it
except ImportError:  # only the mdgw path can run without the peers venv
    _yjson = None


# ---------------------------------------------------------------------------------- run


def measure(ds: Dataset, rounds: int, paths: tuple[str, ...]) -> tuple[dict[str, Outcome], int]:
    """Each path's outcome and how many timed frames changed a book (the naive replay)."""
    expected, changing = truth(ds)
    makers: dict[str, Callable[[], Any]] = {
        "mdgw": lambda: MdgwPath(ds),
        "cryptofeed BookZMQ": lambda: CryptofeedPath(ds, payload=True),
        "cryptofeed bare": lambda: CryptofeedPath(ds, payload=False),
    }
    runners = {name: makers[name]() for name in paths}
    results = {name: Outcome() for name in paths}
    for r in range(rounds):
        order = list(paths[r % len(paths) :] + paths[: r % len(paths)])
        for name in order:
            per_frame, state = runners[name].run()
            wrong, checked = runners[name].check(state, expected)
            res = results[name]
            res.per_frame_us.append(per_frame)
            res.wrong += wrong
            res.checked += checked
            res.published = runners[name].published(state)
            del state
    return results, changing


def render(rows: list[list[str]]) -> str:
    header = [
        "data",
        "mdgw µs/frame",
        "cryptofeed BookZMQ µs",
        "cryptofeed bare µs",
        "BookZMQ / mdgw",
        "bare / mdgw",
        "books checked / wrong",
        "frames / changing / published (mdgw, BookZMQ, bare)",
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cols: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cols, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--deltas", type=int, default=30_000, help="synthetic deltas per run")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--min-frames", type=int, default=2_000, help="per recording run")
    parser.add_argument("--quick", action="store_true", help="2 rounds of small runs (smoke)")
    parser.add_argument("--mdgw-only", action="store_true", help="without cryptofeed")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.deltas, args.min_frames = 2, 2_000, 300
    paths = ("mdgw",) if args.mdgw_only else PATHS
    if not args.mdgw_only and _yjson is None:
        print("cryptofeed is not installed here: run `make bench-peers`", file=sys.stderr)
        return 2

    started = time.time()
    print(f"bench-peers: mdgw hot path: {mdgw.compiled.ACTIVE}", file=sys.stderr)
    datasets = [synthetic(args.symbols, args.deltas), *recordings(args.min_frames)]
    if len(datasets) == 1:
        print("bench-peers: no recordings found in", *RECORDING_DIRS, file=sys.stderr)
    rows: list[list[str]] = []
    doc_rows = []
    problems = 0
    for ds in datasets:
        print(f"bench-peers: {ds.name}: {ds.note}, {args.rounds} rounds", file=sys.stderr)
        res, changing = measure(ds, args.rounds, paths)
        med = {name: statistics.median(o.per_frame_us) for name, o in res.items()}
        checked = sum(o.checked for o in res.values())
        wrong = sum(o.wrong for o in res.values())
        problems += wrong
        cf_zmq, cf_bare = med.get("cryptofeed BookZMQ"), med.get("cryptofeed bare")
        rows.append(
            [
                ds.name,
                f"{med['mdgw']:.2f}",
                "-" if cf_zmq is None else f"{cf_zmq:.2f}",
                "-" if cf_bare is None else f"{cf_bare:.2f}",
                "-" if cf_zmq is None else f"{cf_zmq / med['mdgw']:.2f}",
                "-" if cf_bare is None else f"{cf_bare / med['mdgw']:.2f}",
                f"{checked} / {wrong}",
                f"{len(ds.frames)} / {changing} / "
                + ", ".join(str(res[n].published) if n in res else "-" for n in PATHS),
            ]
        )
        doc_rows.append(
            {
                "data": ds.name,
                "note": ds.note,
                "frames_per_run": len(ds.frames),
                "median_us_per_frame": med,
                "runs_us_per_frame": {n: o.per_frame_us for n, o in res.items()},
                "books_checked": checked,
                "frames_changing_a_book": changing,
                "published_per_run": {n: o.published for n, o in res.items()},
                "books_wrong": {n: o.wrong for n, o in res.items()},
            }
        )
    table = render(rows)
    print(table)
    print(
        f"mdgw: {mdgw.compiled.ACTIVE}; median of {args.rounds} interleaved runs; "
        "targets: BookZMQ / mdgw >= 5, bare / mdgw >= 2"
    )
    doc = {
        "run": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1),
            "python": platform.python_version(),
            "mdgw_hot_path": mdgw.compiled.ACTIVE,
            "cryptofeed": _version("cryptofeed"),
            "rounds": args.rounds,
            "loadavg_at_start": list(os.getloadavg()),
        },
        "rows": doc_rows,
        "table": table,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = doc["run"]["started"].replace(":", "").replace("-", "")
    text = json.dumps(doc, indent=1)
    (args.out_dir / f"peers-{stamp}.json").write_text(text)
    (args.out_dir / "peers-latest.json").write_text(text)
    print(f"bench-peers: wrote var/bench/peers-{stamp}.json", file=sys.stderr)
    return 1 if problems else 0


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())

"""Soak: the whole gateway for a long time at a high rate, with periodic faults (``make soak``).

The simulator runs in this process (its truth is read directly); book_builder and the
ingestor are real processes. Default: 30 minutes at about 5,000 frames per second (depth-50
books of ~110 symbols at 100 updates per second, plus their trades), a fault every 30 s,
cycling through the simulator's switches: a skipped delta, a crossed delta, a malformed
frame, a ``u = 1`` restart, an oversized frame, a dropped connection, a 3 s silence.

Checked all along (exit status 1 if any fails; a JSON report on stdout):

- no wrong book: a sample of the books (``--sample``, plus the first book after every status
  change) equals the simulator's truth at its ``u``; no book is published while its topic's
  last status is not ``live``; no hole in any topic's ``seq``;
- every fault's book is live again within ``--recovery`` seconds;
- RSS flat: book_builder's and the ingestor's resident memory at the end is within
  ``--rss-growth-mib`` of what it was after the warm-up (the first tenth of the run);
- book_builder keeps up: between its first and last stats line of the run it took at least
  90 % of the frames the simulator sent (a dropped connection loses a few);
- log volume bounded: per service at most ``--log-lines-per-min`` lines per minute plus,
  per fault, two lines per book it can break (``book_resyncing`` and ``book_live`` of every
  book of a dropped connection); and fewer than one line per 100 frames.

    .venv/bin/python scripts/soak.py                         # 30 min, ~5k frames/s
    .venv/bin/python scripts/soak.py --minutes 5 --frames-per-s 2000

tests/reliability/test_soak.py runs :func:`soak` for 24 s.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import zmq.asyncio

from mdgw.simulator.faults import FaultKind, FaultRequest
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.config import Key, Stream, sim_params
from mdgw.testing.endpoints import short_tempdir
from mdgw.testing.gateway import Gateway
from mdgw.testing.truth import TruthConsumer

SYMBOL_BASES = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "AVAX", "LINK", "DOT", "LTC")
# A depth-50 topic pushes at most every 20 ms; at 100 steps per second a symbol sends ~45.
FRAMES_PER_SYMBOL = 45.0


@dataclass
class Options:
    minutes: float = 30.0
    frames_per_s: float = 5000.0
    fault_every: float = 30.0
    sample: float = 0.05
    recovery: float = 15.0
    rss_growth_mib: float = 48.0
    log_lines_per_min: float = 30.0  # besides the lines each fault's state changes cause
    stats_interval: float = 10.0
    seed: int = 11


@dataclass
class FaultRecord:
    at_s: float  # into the run
    kind: str
    key: Key
    recovered_s: float | None = None  # seconds until the book was live again (pub_ns)
    at_mono: float = field(default=0.0, repr=False)  # monotonic clock
    at_ns: int = field(default=0, repr=False)  # wall clock, as pub_ns


@dataclass
class Report:
    options: dict[str, Any]
    symbols: int = 0
    seconds: float = 0.0
    frames_in: int = 0  # book_builder's, over the run
    frames_per_s: float = 0.0
    # book_builder's frames against what the simulator sent, between its first and last
    # stats line of the run: the gateway keeps up with the offered rate (the rate itself is
    # the simulator's, in this process, and drops on a busy machine).
    offered_per_s: float = 0.0
    keep_up: float = 0.0
    books_seen: int = 0
    books_checked: int = 0
    unverifiable: int = 0
    wrong: list[str] = field(default_factory=list)
    seq_errors: list[str] = field(default_factory=list)
    published_while_not_live: list[str] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)
    rss_kib: dict[str, list[int]] = field(default_factory=dict)
    rss_growth_kib: dict[str, int] = field(default_factory=dict)
    log_lines: dict[str, int] = field(default_factory=dict)
    log_lines_per_min: dict[str, float] = field(default_factory=dict)
    state_change_lines: int = 0  # book_resyncing and book_live, of every service
    ingestor_dropped: int = 0
    exit_status: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def soak_streams(frames_per_s: float) -> list[Stream]:
    """Enough depth-50 symbols, over linear and spot, for *frames_per_s*."""
    count = max(2, math.ceil(frames_per_s / FRAMES_PER_SYMBOL))
    streams: list[Stream] = []
    n = 0
    while len(streams) < count:
        base = SYMBOL_BASES[n % len(SYMBOL_BASES)]
        suffix = "" if n < len(SYMBOL_BASES) else str(n // len(SYMBOL_BASES))
        for category in ("linear", "spot"):
            if len(streams) < count:
                streams.append(Stream(category, f"{base}{suffix}USDT", 50))
        n += 1
    return streams


def fault_plan(streams: list[Stream], rng: random.Random) -> list[tuple[FaultRequest, Key]]:
    """The faults, one per round: (the request, the book it breaks)."""
    plan: list[tuple[FaultRequest, Key]] = []
    for kind in (
        FaultKind.SKIP,
        FaultKind.CROSSED,
        FaultKind.MALFORMED,
        FaultKind.RESTART,
        FaultKind.OVERSIZED,
        FaultKind.DROP,
        FaultKind.SILENCE,
    ):
        s = rng.choice(streams)
        topic = f"orderbook.{s.depth}.{s.symbol}"
        if kind is FaultKind.DROP:
            request = FaultRequest(kind, category=s.category)
        elif kind is FaultKind.SILENCE:
            request = FaultRequest(kind, category=s.category, seconds=3.0)
        else:
            request = FaultRequest(kind, category=s.category, topic=topic)
        plan.append((request, s.key))
    return plan


async def soak(options: Options, workdir: Path | None = None) -> Report:
    """Run the soak; the report (``report.ok`` False with ``problems`` when a check failed)."""
    report = Report(options=asdict(options))
    streams = soak_streams(options.frames_per_s)
    report.symbols = len(streams)
    rng = random.Random(options.seed)
    rundir = short_tempdir("mdgw-soak-")
    logdir = workdir or rundir
    params = sim_params(streams, rate=100.0, trade_rate=1.0, seed=options.seed, truth_history=3000)
    async with SimulatorServer(params) as sim:
        gw = Gateway(
            rundir,
            logdir,
            streams,
            ws_url=f"ws://127.0.0.1:{sim.port}/v5/public",
            sections={
                "bybit": {"ping_interval": 5, "silence_timeout": 12, "backoff_max": 2.0},
                "log": {"stats_interval": options.stats_interval},
            },
        )
        ctx = zmq.asyncio.Context()
        # Books and statuses only: bbo and trades would cost this process for nothing.
        consumer = TruthConsumer(
            ctx, gw.pub, sim, streams, sample=options.sample, prefixes=(b"book.", b"status.")
        )
        gw.start()
        consumer.start()
        services = {"book_builder": gw.builder, "ingestor": gw.ingestor}
        try:
            deadline = time.monotonic() + 60
            while not consumer.all_live(gw.keys):
                if time.monotonic() > deadline:
                    missing = [k for k in gw.keys if consumer.seen.state.get(k) != "live"]
                    report.problems.append(f"books never live: {missing[:5]}")
                    return report
                await asyncio.sleep(0.2)
            started = time.monotonic()
            end = started + options.minutes * 60
            warm_until = started + max(5.0, options.minutes * 6)  # the first tenth
            frames_at_start = (gw.builder.stats() or {}).get("frames_in", 0)
            rss: dict[str, list[int]] = {name: [] for name in services}
            rss_warm: dict[str, int] = {}
            plan = fault_plan(streams, rng)
            next_fault = started + min(options.fault_every, 5.0)
            next_rss = started
            pending: list[FaultRecord] = []
            round_no = missed = 0
            offered: list[tuple[float, int]] = []  # (wall clock, the simulator's frames out)
            while time.monotonic() < end:
                now = time.monotonic()
                offered.append((time.time(), sim.fanout.frames_out))
                consumer.check()
                if now >= next_rss:
                    next_rss = now + max(1.0, options.minutes * 60 / 60)
                    for name, service in services.items():
                        rss[name].append(service.rss_kib())
                if not rss_warm and now >= warm_until:
                    rss_warm = {name: service.rss_kib() for name, service in services.items()}
                if now >= next_fault:
                    request, key = plan[round_no % len(plan)]
                    record = FaultRecord(
                        round(now - started, 1),
                        request.kind.value,
                        key,
                        at_mono=now,
                        at_ns=time.time_ns(),
                    )
                    hit = sim.apply_fault(request) >= 1
                    if hit:
                        report.faults.append(record)
                        pending.append(record)
                    missed = 0 if hit else missed + 1
                    if hit or missed >= 10:
                        round_no += 1
                        next_fault = now + options.fault_every
                    else:  # its book is resubscribing after an earlier fault: a bit later
                        next_fault = now + 0.5
                _settle(consumer, pending, report, options)
                await asyncio.sleep(0.1)
            report.seconds = round(time.monotonic() - started, 1)
            # The last faults get their time to recover too.
            while pending:
                _settle(consumer, pending, report, options)
                await asyncio.sleep(0.1)
            stats = gw.builder.stats() or {}
            report.frames_in = stats.get("frames_in", 0) - frames_at_start
            report.frames_per_s = round(report.frames_in / max(report.seconds, 1e-9), 1)
            _keep_up(report, gw.builder.stats_lines(), offered)
            ingestor_stats = gw.ingestor.stats() or {}
            report.ingestor_dropped = ingestor_stats.get("dropped", 0)
            for name, service in services.items():
                rss[name].append(service.rss_kib())
                report.rss_growth_kib[name] = rss[name][-1] - rss_warm.get(name, rss[name][0])
            report.rss_kib = rss
        finally:
            await consumer.stop()
            report.exit_status = gw.stop()
            gw.kill()
            ctx.destroy(linger=0)
    seen = consumer.seen
    report.books_seen = seen.books
    report.books_checked = seen.verified
    report.unverifiable = seen.unverifiable
    report.wrong = seen.wrong[:20]
    report.seq_errors = seen.seq_errors[:20]
    report.published_while_not_live = seen.published_while_not_live[:20]
    minutes = max(report.seconds / 60, 1e-9)
    for name, service in services.items():
        lines = len(service.raw_lines())
        report.log_lines[name] = lines
        report.log_lines_per_min[name] = round(lines / minutes, 1)
        report.state_change_lines += len(service.events("book_resyncing", "book_live"))
    _judge(report, options)
    return report


def _settle(
    consumer: TruthConsumer, pending: list[FaultRecord], report: Report, options: Options
) -> None:
    """Each pending fault: recovered, or not within ``options.recovery``.

    Both on the publisher's clock (``pub_ns``): a fault's book counts as recovered at the
    first live book published 0.5 s or more after the fault, and as not recovered once this
    consumer has read messages published ``options.recovery`` after the fault without one.
    So this consumer's own lag (it shares a process with the simulator) never decides; a
    minute past the bound on the local clock ends the wait if nothing arrives at all.
    """
    seen = consumer.seen
    now = time.monotonic()
    for record in list(pending):
        if consumer.live_book_published_after(record.key, record.at_ns + 500_000_000):
            published = seen.last_book_pub_ns[record.key]
            record.recovered_s = round((published - record.at_ns) / 1e9, 2)
            pending.remove(record)
        elif (
            seen.last_pub_ns - record.at_ns > options.recovery * 1e9
            or now - record.at_mono > options.recovery + 60
        ):
            report.unrecovered.append(f"{record.kind} {record.key} at {record.at_s}s")
            pending.remove(record)


def _keep_up(report: Report, lines: list[dict[str, Any]], offered: list[tuple[float, int]]) -> None:
    """book_builder's frames over the simulator's, between two stats lines of the run."""
    if not offered:
        return
    inside = [line for line in lines if offered[0][0] <= line["t"] <= offered[-1][0]]
    if len(inside) < 2:
        return
    first, last = inside[0], inside[-1]

    def sent_at(t: float) -> float:  # linear between the samples either side of t
        for (t0, f0), (t1, f1) in itertools.pairwise(offered):
            if t0 <= t <= t1:
                return f0 + (f1 - f0) * (t - t0) / max(t1 - t0, 1e-9)
        return float(offered[-1][1])

    sent = sent_at(last["t"]) - sent_at(first["t"])
    got = last["frames_in"] - first["frames_in"]
    report.offered_per_s = round(sent / max(last["t"] - first["t"], 1e-9), 1)
    report.keep_up = round(got / max(sent, 1.0), 3)


def _judge(report: Report, options: Options) -> None:
    problems = report.problems
    if report.wrong:
        problems.append(f"{len(report.wrong)} wrong books")
    if report.seq_errors:
        problems.append(f"seq holes: {report.seq_errors[:3]}")
    if report.published_while_not_live:
        problems.append(f"books published while not live: {report.published_while_not_live[:3]}")
    if report.unrecovered:
        problems.append(f"not live again within {options.recovery:g}s: {report.unrecovered}")
    if not report.faults:
        problems.append("no fault was injected")
    # Frames lost by the faults themselves (a dropped connection) are a few per fault.
    if report.keep_up < 0.9:  # 0.0: fewer than two stats lines in the run, not measured
        problems.append(
            f"book_builder took {report.keep_up:.1%} of the frames the simulator sent "
            f"({report.offered_per_s:g}/s) between its first and last stats line"
        )
    if report.books_checked < 100:
        problems.append(f"only {report.books_checked} books checked")
    for name, growth in report.rss_growth_kib.items():
        if growth > options.rss_growth_mib * 1024:
            problems.append(f"{name} RSS grew by {growth} KiB after the warm-up")
    minutes = report.seconds / 60
    budget = options.log_lines_per_min * minutes + len(report.faults) * (2 * report.symbols + 10)
    for name, lines in report.log_lines.items():
        if lines > budget:
            problems.append(f"{name} logged {lines} lines, more than {budget:.0f}")
    # Never one line per frame. The faults' state changes are bounded above, per fault, and
    # do not scale with frames (a run the simulator could not feed at its rate, on a busy
    # machine, has fewer frames but the same faults): every other line counts here.
    lines = sum(report.log_lines.values()) - report.state_change_lines
    if report.frames_in and lines > report.frames_in / 100:
        problems.append(f"{lines} log lines (besides state changes) for {report.frames_in} frames")
    if any(status != 0 for status in report.exit_status.values()):
        problems.append(f"exit status after SIGTERM: {report.exit_status}")

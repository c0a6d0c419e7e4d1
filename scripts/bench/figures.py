"""The default benchmarks (``make bench``): one function per figure, real processes each.

- :func:`throughput`: book_builder's sustained output with a backlog in front of it, and
  the pass-through ceiling measured the same way right after it;
- :func:`latency`: ingestor receive -> consumer receive through the whole stack, at a
  fixed websocket frame rate;
- :func:`ingestor_rate`: the ingestor's receive rate against a bare websockets client,
  alternately, from one server running flat out.

Each returns a :class:`~scripts.bench.report.FigureResult`; docs/performance.md describes
the methods and what limits each number.
"""

from __future__ import annotations

import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.bench import frames, profiling
from scripts.bench.procs import BenchError, Proc, gateway_config, progress, stats_lines
from scripts.bench.report import ERROR, FigureResult, Row, judged
from scripts.bench.scraper import Scraper
from scripts.bench.stage import Endpoints, Stage

__all__ = ["Timing", "ingestor_rate", "latency", "metrics_scrape", "throughput"]

BUILDER_TARGET = 120_000  # frames/s
LATENCY_TARGETS = {2_000: {"p50": 100.0, "p99": 500.0}, 30_000: {"p99": 3_000.0}}  # µs
INGESTOR_TARGET = 0.80  # of the bare client's rate
SCRAPE_TARGET = 0.95  # builder throughput scraped every second / not scraped
_VERIFY_EVERY = 200  # every N-th book is compared with the script


@dataclass(frozen=True)
class Timing:
    """Sizes and durations of the default figures (seconds)."""

    symbols: int = 100
    pipe_warmup: float = 2.0
    pipe_seconds: float = 9.0  # read as 3 sub-windows; the median is reported
    pipe_reps: int = 2  # builder, pass-through, builder, pass-through
    latency_warmup: float = 2.0
    latency_seconds: tuple[tuple[int, float], ...] = ((2_000, 15.0), (30_000, 8.0))
    ws_warmup: float = 1.0
    ws_seconds: float = 4.0
    ws_reps: int = 3
    hop_seconds: float = 5.0


QUICK = Timing(
    pipe_reps=1,
    pipe_warmup=0.3,
    pipe_seconds=0.6,
    latency_warmup=0.3,
    latency_seconds=((2_000, 0.5), (30_000, 0.5)),
    ws_warmup=0.2,
    ws_seconds=0.5,
    ws_reps=1,
    hop_seconds=0.5,
)


# --------------------------------------------------------------------------- helpers


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def window_rate(result: dict[str, Any], key: str) -> float:
    seconds = result.get("window_s") or 0.0
    return float(result["window_counts"].get(key, 0)) / seconds if seconds > 0 else 0.0


def sub_rates(result: dict[str, Any], parts: int = 3) -> list[float]:
    """The window's rate in ``parts`` consecutive sub-windows (from the 100 ms timeline)."""
    buckets: list[int] = result.get("buckets") or []
    size = len(buckets) // parts
    if size == 0:
        return []
    span = size * float(result["bucket_s"])
    return [sum(buckets[i * size : (i + 1) * size]) / span for i in range(parts)]


def timeline_rate(
    timeline: list[list[float]], start: float, end: float, column: int = 1
) -> float | None:
    """Rate of a ``[[wall time, running count, ...], ...]`` timeline over [start, end]."""
    inside = [(row[0], row[column]) for row in timeline if start <= row[0] <= end]
    if len(inside) < 2:
        return None
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def in_window(lines: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [line for line in lines if start <= line["t"] <= end + 0.5]


def counter_rate(lines: list[dict[str, Any]], key: str) -> float | None:
    """Rate of a monotonic counter of stats lines, first to last line given."""
    if len(lines) < 2:
        return None
    first, last = lines[0], lines[-1]
    dt = last["t"] - first["t"]
    return (last[key] - first[key]) / dt if dt > 0 else None


def builder_counters(proc: Proc) -> dict[str, Any]:
    """The builder's last stats line: its counters of what went wrong."""
    lines = stats_lines(proc)
    if not lines:
        return {}
    last = lines[-1]
    keys = (
        "frames_in",
        "books_out",
        "resyncs",
        "gaps",
        "seq_holes",
        "frames_lost",
        "crossed",
        "malformed",
        "not_synced",
        "bad_envelopes",
        "pub_dropped",
        "books",
    )
    return {key: last.get(key) for key in keys}


def problems_of(consumer: dict[str, Any], builder: dict[str, Any]) -> list[str]:
    """Correctness failures: wrong books, resyncs, gaps, holes, or books not live."""
    found = []
    if consumer.get("wrong"):
        found.append(f"{consumer['wrong']} wrong books ({consumer['wrong_examples'][:1]})")
    if consumer.get("seq_holes"):
        found.append(f"{consumer['seq_holes']} seq holes ({consumer['seq_lost']} lost)")
    states = consumer.get("states", {})
    if states.get("resyncing") or states.get("stale"):
        found.append(f"status messages {states} ({consumer['status_examples'][:2]})")
    for key in ("resyncs", "gaps", "seq_holes", "crossed", "malformed", "not_synced"):
        if builder.get(key):
            found.append(f"builder {key}={builder[key]}")
    if not consumer.get("verified") and consumer.get("counts", {}).get("book"):
        found.append("no book was verified")
    return found


# --------------------------------------------------------------------------- throughput


def _pipe(
    base: Path,
    kind: str,
    t: Timing,
    profile: Path | None = None,
    rep: int = 0,
    *,
    scrape: bool | None = None,
) -> dict[str, Any]:
    """Blaster -> builder (or pass-through) -> consumer; the consumer's rate in its window.

    With ``profile``, the builder is profiled (:mod:`.profiling`) and the summary kept.
    With ``scrape`` not None, the builder serves /metrics (``--metrics-port auto``), and
    with ``scrape`` True a :class:`~scripts.bench.scraper.Scraper` GETs it every second.
    """
    spy = profiling.py_spy() if profile is not None else None
    cprof = profile / "book_builder.cprofile" if profile is not None and spy is None else None
    label = kind if scrape is None else f"{kind}-{'scraped' if scrape else 'idle'}"
    scraper: Scraper | None = None
    with Stage(base, f"{label}-{rep + 1}") as stage:
        ep = Endpoints.in_dir(stage.dir)
        consumer_args = [
            "--endpoint",
            ep.pub,
            "--warmup",
            str(t.pipe_warmup),
            "--seconds",
            str(t.pipe_seconds),
        ]
        if kind == "book_builder":
            config = gateway_config(
                stage.dir / "gateway.toml",
                raw=ep.raw,
                control=ep.control,
                pub=ep.pub,
                snapshot=ep.snapshot,
            )
            if cprof is not None:
                argv = profiling.cprofile_argv("book_builder", cprof)
                env = {"MDGW_CONFIG": str(config)}
                hub = stage.add(Proc("book_builder", argv, stage.dir, env=env))
            else:
                args = [] if scrape is None else ["--metrics-port", "auto"]
                hub = stage.add(
                    Proc.service("book_builder", "book_builder", config, stage.dir, args)
                )
            hub.wait_event("book_builder_started")
            if scrape is not None:
                port = hub.wait_event("metrics_listening")["port"]
                if scrape:
                    scraper = Scraper(f"http://127.0.0.1:{port}/metrics", interval=1.0)
            consumer_args += ["--subscribe", "book.", "--subscribe", "status."]
            consumer_args += ["--verify-every", str(_VERIFY_EVERY)]
        else:
            hub = stage.add(
                Proc.helper(
                    "passthrough", "passthrough", ["--raw", ep.raw, "--pub", ep.pub], stage.dir
                )
            )
            hub.wait_ready()
            consumer_args += ["--payload", "raw"]
        consumer = stage.add(Proc.helper("consumer", "consumer", consumer_args, stage.dir))
        consumer.wait_ready()
        blaster = stage.add(
            Proc.helper(
                "blaster", "blaster", ["--endpoint", ep.raw, "--symbols", str(t.symbols)], stage.dir
            )
        )
        blaster.wait_ready()
        if scraper is not None:
            scraper.start()
        sampling = None
        if spy is not None and profile is not None and kind == "book_builder":
            time.sleep(t.pipe_warmup + 0.5)
            raw_profile = profile / "book_builder.pyspy.txt"
            sampling = profiling.record(hub, t.pipe_seconds - 0.5, raw_profile)
        consumer.wait_exit(t.pipe_warmup + t.pipe_seconds + 60)
        if scraper is not None:
            scraper.stop()
        stage.sampler.sample()
        if sampling is not None:
            sampling.wait(timeout=30)
        hub.stop()  # first: the blaster going quiet would look like a lost ingestor
        blaster.stop()
        got = consumer.result()
        sent = blaster.result()
        if got["first"] is None:
            raise BenchError(f"{kind}: the consumer received nothing")
        start, end = got["window"]
        key = "book" if kind == "book_builder" else "data"
        out: dict[str, Any] = {
            "rate": window_rate(got, key),
            "sub_rates": sub_rates(got),
            "offered": timeline_rate(sent["timeline"], start, end),
            "sent_total": sent["sent"],
            # > 0: the blaster found the pipe full in the window, so it was not the limit.
            "pipe_full_per_s": timeline_rate(sent["timeline"], start, end, column=2),
            "window": [start, end],
            "cpu": {p.name: stage.sampler.cpu_share(p.name, start, end) for p in stage.procs},
            "other_cpu": stage.sampler.other_share(start, end),
            "consumer": {k: v for k, v in got.items() if k != "buckets"},
        }
        if kind == "book_builder":
            lines = in_window(stats_lines(hub), start, end)
            out["builder_books_per_s"] = [line.get("books_per_s") for line in lines]
            # The builder's own pub_ns - recv_ns: here, how long frames waited in the pipe.
            queue = [float(x) for x in (line.get("latency_p50_us") for line in lines) if x]
            out["queue_delay_ms"] = statistics.median(queue) / 1000 if queue else None
            out["builder"] = builder_counters(hub)
            out["problems"] = problems_of(got, out["builder"])
            out["builder_books_out_per_s"] = counter_rate(lines, "books_out")
        else:
            # The pass-through's own count of what it published: the consumer, which parses
            # what it counts, may fall behind it (and lose messages at the PUB).
            published = hub.result()
            timeline = published.pop("timeline")
            third = (end - start) / 3
            thirds = [
                timeline_rate(timeline, start + i * third, start + (i + 1) * third)
                for i in range(3)
            ]
            out["sub_rates"] = [r for r in thirds if r is not None]
            out["rate"] = timeline_rate(timeline, start, end) or 0.0
            out["consumer_rate"] = window_rate(got, "data")
            out["problems"] = []
            out["passthrough"] = published
        if profile is not None and kind == "book_builder":
            out["profile"] = _summarize_profile(profile, spy is not None)
        if scraper is not None:
            out["scrapes"] = scraper.result(start, end)
            if out["scrapes"]["failed"]:
                out["problems"].append(f"{out['scrapes']['failed']} scrapes of /metrics failed")
        rates = out["sub_rates"] or [out["rate"]]
        out["median_rate"] = statistics.median(rates)
        progress(
            f"{label}: {out['median_rate']:,.0f}/s (sub-windows {', '.join(fmt(r) for r in rates)})"
        )
        return out


def _summarize_profile(profile: Path, spied: bool) -> dict[str, str]:
    if spied:
        raw, tool = profile / "book_builder.pyspy.txt", "py-spy"
        summary = profiling.summarize_py_spy(raw) if raw.exists() else "(py-spy wrote nothing)"
    else:
        raw, tool = profile / "book_builder.cprofile", "cProfile (throughput not comparable)"
        summary = profiling.summarize_cprofile(raw) if raw.exists() else "(no cProfile data)"
    text = f"book_builder under the throughput benchmark, {tool}\n\n{summary}\n"
    (profile / "book_builder-profile.txt").write_text(text)
    progress(f"profile: {profile / 'book_builder-profile.txt'}")
    return {"tool": tool, "raw": str(raw), "summary": summary}


def _combine(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The repetitions of one pipe as one: medians of rates, sums of counts."""

    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    consumer = {
        key: sum(run["consumer"][key] for run in runs)
        for key in ("verified", "wrong", "seq_holes", "seq_lost")
    }
    return {
        "median_rate": median([r for run in runs for r in (run["sub_rates"] or [run["rate"]])]),
        "offered": median([run["offered"] for run in runs]),
        "queue_delay_ms": median([run.get("queue_delay_ms") for run in runs]),
        "cpu": median([run["cpu"].get(name) for run in runs]),
        "per_cpu_second": median(
            [run["rate"] / run["cpu"][name] if run["cpu"].get(name) else None for run in runs]
        ),
        "pipe_full_per_s": median([run["pipe_full_per_s"] for run in runs]),
        "consumer_rate": median([run.get("consumer_rate") for run in runs]),
        "resyncs": sum((run.get("builder") or {}).get("resyncs") or 0 for run in runs),
        "consumer": consumer,
        "problems": [p for run in runs for p in run["problems"]],
    }


def saturated(run: dict[str, Any]) -> bool:
    """Whether the blaster found the pipe full during the window: then the process under
    test, not the blaster, set the rate."""
    return bool(run.get("pipe_full_per_s"))


def throughput(base: Path, t: Timing, profile: Path | None = None) -> FigureResult:
    fig = FigureResult("throughput")
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {"book_builder": [], "passthrough": []}
    for rep in range(t.pipe_reps):  # alternately, so slow phases of the machine hit both
        runs["book_builder"].append(_pipe(base, "book_builder", t, profile, rep))
        profile = None
        runs["passthrough"].append(_pipe(base, "passthrough", t, None, rep))
    fig.details = {**runs, "symbols": t.symbols}
    builder = _combine(runs["book_builder"], "book_builder")
    ceiling = _combine(runs["passthrough"], "passthrough")
    fig.details["combined"] = {"book_builder": builder, "passthrough": ceiling}
    rate, top = builder["median_rate"], ceiling["median_rate"]
    correct = not builder["problems"]
    cpu = builder["cpu"]
    # Output per CPU-second of the process under test: what it would do with a core to
    # itself, and much less sensitive to whatever else runs on the machine.
    own = builder["per_cpu_second"]
    top_own = ceiling["per_cpu_second"]
    fig.rows = [
        Row(
            "book_builder throughput (books/s, depth-50 deltas in, top-25 out)",
            fmt(rate),
            f">= {BUILDER_TARGET:,}; ceiling {fmt(top)}",
            rate / top if top else None,
            judged(rate >= BUILDER_TARGET and correct),
            rate,
            "books/s",
        ),
        Row(
            "  offered: blaster frames/s sent (the pipe was full: backlog)",
            fmt(builder["offered"]),
            f"queue delay {fmt(builder['queue_delay_ms'])} ms",
            None,
            judged(saturated(builder)),
            builder["offered"],
            "frames/s",
        ),
        Row(
            "  book_builder CPU (cores)",
            fmt(cpu, 2),
            "-",
            None,
            "info",
            cpu,
            "cores",
        ),
        Row(
            "  books per CPU-second of book_builder",
            fmt(own),
            f"pass-through {fmt(top_own)} per CPU-s",
            own / top_own if own and top_own else None,
            "info",
            own,
            "books/CPU-s",
        ),
        Row(
            "  books verified / wrong / resyncs / seq holes",
            "{} / {} / {} / {}".format(
                builder["consumer"]["verified"],
                builder["consumer"]["wrong"],
                builder["resyncs"],
                builder["consumer"]["seq_holes"],
            ),
            "n / 0 / 0 / 0",
            None,
            judged(correct),
        ),
        Row(
            "pass-through ceiling (msgs/s, PULL -> PUB, no parsing)",
            fmt(top) if saturated(ceiling) else f">= {fmt(top)}",
            f"consumer got {fmt(ceiling['consumer_rate'])}/s",
            None,
            "info",
            top,
            "msgs/s",
        ),
    ]
    if builder["problems"]:
        fig.details["problems"] = builder["problems"]
    return fig


def metrics_scrape(base: Path, t: Timing) -> FigureResult:
    """Builder throughput with /metrics scraped every second, against the same without.

    Both arms serve /metrics (``--metrics-port auto``); only the scraping differs, and the
    arms alternate (idle, scraped, idle, scraped) so slow phases of the machine hit both.
    """
    fig = FigureResult("metrics")
    runs: dict[str, list[dict[str, Any]]] = {"idle": [], "scraped": []}
    for rep in range(t.pipe_reps):
        runs["idle"].append(_pipe(base, "book_builder", t, rep=rep, scrape=False))
        runs["scraped"].append(_pipe(base, "book_builder", t, rep=rep, scrape=True))
    idle = _combine(runs["idle"], "book_builder")
    scraped = _combine(runs["scraped"], "book_builder")
    scrapes = [run.get("scrapes") or {} for run in runs["scraped"]]
    count = sum(s.get("in_window", 0) for s in scrapes)
    durations = [d for s in scrapes for d in s.get("ms", [])]
    fig.details = {**runs, "combined": {"idle": idle, "scraped": scraped}}
    problems = idle["problems"] + scraped["problems"]
    if problems:
        fig.details["problems"] = problems
    a, b = idle["median_rate"], scraped["median_rate"]
    ratio = b / a if a and b else None
    fig.rows = [
        Row(
            "book_builder throughput, /metrics scraped every 1 s (books/s)",
            fmt(b),
            f">= {SCRAPE_TARGET:.0%} of not scraped ({fmt(a)})",
            ratio,
            judged(ratio is not None and ratio >= SCRAPE_TARGET and not problems),
            b,
            "books/s",
        ),
        Row(
            "  books per CPU-second of book_builder (incl. its HTTP thread), scraped",
            fmt(scraped["per_cpu_second"]),
            f"not scraped {fmt(idle['per_cpu_second'])} per CPU-s",
            scraped["per_cpu_second"] / idle["per_cpu_second"]
            if scraped["per_cpu_second"] and idle["per_cpu_second"]
            else None,
            "info",
            scraped["per_cpu_second"],
            "books/CPU-s",
        ),
        Row(
            "  scrapes in the windows; duration p50 / max (ms)",
            f"{count} ; {fmt(statistics.median(durations) if durations else None, 1)} / "
            f"{fmt(max(durations) if durations else None, 1)}",
            "one per second, all 200",
            None,
            judged(count > 0 and not problems),
        ),
    ]
    return fig


# --------------------------------------------------------------------------- latency


def quiesce(ws: Proc) -> None:
    """Stop the websocket frames but keep the connections, then let the pipe drain: the
    services' last counters then describe the run, not its teardown (stopping the server
    would close the ingestor's connections and resync every book; stopping the builder
    first would make the ingestor count drops)."""
    ws.signal(signal.SIGUSR1)
    time.sleep(0.5)


def stack_config(
    stage: Stage,
    ep: Endpoints,
    port: str,
    symbols: int,
    *,
    trades: bool,
    stats_interval: float = 1.0,
) -> Path:
    """The gateway config of a benchmark stack: ws blaster at ``port``, ``symbols`` books."""
    return gateway_config(
        stage.dir / "gateway.toml",
        raw=ep.raw,
        control=ep.control,
        pub=ep.pub,
        snapshot=ep.snapshot,
        ws_url=f"ws://127.0.0.1:{port}/v5/public",
        symbols=[frames.symbol(i) for i in range(symbols)],
        trades=trades,
        stats_interval=stats_interval,
    )


def latency_run(
    base: Path, rate: int, symbols: int, warmup: float, seconds: float
) -> dict[str, Any]:
    """ws_blaster at ``rate`` -> ingestor -> book_builder -> consumer (latency samples)."""
    with Stage(base, f"latency-{rate}") as stage:
        ws = stage.add(
            Proc.helper(
                "ws_blaster",
                "ws_blaster",
                ["--symbols", str(symbols), "--rate", str(rate)],
                stage.dir,
            )
        )
        ws.wait_ready()
        ep = Endpoints.in_dir(stage.dir)
        config = stack_config(stage, ep, ws.ready.read_text(), symbols, trades=False)
        builder = stage.add(Proc.service("book_builder", "book_builder", config, stage.dir))
        builder.wait_event("book_builder_started")
        consumer_args = ["--endpoint", ep.pub, "--subscribe", "book.", "--subscribe", "status."]
        consumer_args += ["--latency", "--verify-every", str(_VERIFY_EVERY)]
        consumer_args += ["--warmup", str(warmup), "--seconds", str(seconds)]
        consumer = stage.add(Proc.helper("consumer", "consumer", consumer_args, stage.dir))
        consumer.wait_ready()
        ingestor = stage.add(Proc.service("ingestor", "ingestor", config, stage.dir))
        ingestor.wait_event("ingestor_started")
        consumer.wait_exit(warmup + seconds + 60)
        stage.sampler.sample()
        quiesce(ws)
        builder.stop()
        ingestor.stop()
        ws.stop()
        got = consumer.result()
        if got["first"] is None:
            raise BenchError(f"latency at {rate}/s: the consumer received nothing")
        start, end = got["window"]
        ingestor_lines = stats_lines(ingestor)
        counters = builder_counters(builder)
        out = {
            "rate": rate,
            "received_per_s": window_rate(got, "book"),
            "latency_us": got["latency"],
            "latency_recv_to_pub_us": got["latency_to_publish"],
            "latency_pub_to_consumer_us": got["latency_from_publish"],
            "latency_per_second": got["latency_per_second"],
            "cpu": {p.name: stage.sampler.cpu_share(p.name, start, end) for p in stage.procs},
            "other_cpu": stage.sampler.other_share(start, end),
            "builder": counters,
            "ingestor_dropped": ingestor_lines[-1].get("dropped") if ingestor_lines else None,
            "consumer": {k: v for k, v in got.items() if k not in ("buckets",)},
            "problems": problems_of(got, counters),
        }
        lat = got["latency"] or {}
        progress(
            f"latency at {rate:,}/s: p50 {fmt(lat.get('p50_us'))} us, "
            f"p99 {fmt(lat.get('p99_us'))} us, max {fmt(lat.get('max_us'))} us"
        )
        return out


def hop_floor(base: Path, rate: int, warmup: float, seconds: float) -> dict[str, Any]:
    """One bare PUB -> SUB hop at ``rate`` (:mod:`.hop`): the floor under every hop."""
    with Stage(base, f"hop-{rate}") as stage:
        pub = Endpoints.in_dir(stage.dir).pub
        consumer_args = ["--endpoint", pub, "--latency", "--warmup", str(warmup)]
        consumer_args += ["--seconds", str(seconds)]
        consumer = stage.add(Proc.helper("consumer", "consumer", consumer_args, stage.dir))
        consumer.wait_ready()
        sender = stage.add(
            Proc.helper("hop", "hop", ["--pub", pub, "--rate", str(rate)], stage.dir)
        )
        sender.wait_ready()
        consumer.wait_exit(warmup + seconds + 60)
        sender.stop()
        got = consumer.result()
    lat = got["latency"] or {}
    progress(
        f"one bare PUB->SUB hop at {rate:,}/s: p50 {fmt(lat.get('p50_us'))} us, "
        f"p99 {fmt(lat.get('p99_us'))} us"
    )
    return {"latency_us": got["latency"], "seq_holes": got["seq_holes"]}


def latency(base: Path, t: Timing) -> FigureResult:
    fig = FigureResult("latency")
    for rate, seconds in t.latency_seconds:
        floor = hop_floor(base, rate, t.latency_warmup / 2, min(seconds, t.hop_seconds))
        run = latency_run(base, rate, t.symbols, t.latency_warmup, seconds)
        run["hop_floor"] = floor
        fig.details[str(rate)] = run
        lat = run["latency_us"] or {}
        targets = LATENCY_TARGETS.get(rate, {})
        correct = not run["problems"]
        label = f"latency @ {rate // 1000}k frames/s"
        for key, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")):
            value = lat.get(f"{key}_us")
            target = targets.get(key)
            if target is None:
                status = "info"
            else:
                status = judged(value is not None and value <= target and correct)
            fig.rows.append(
                Row(
                    f"{label}, {name} (us, ingestor recv -> consumer recv)",
                    fmt(value),
                    "-" if target is None else f"<= {target:,.0f}",
                    None if target is None or value is None else value / target,
                    status,
                    value,
                    "us",
                )
            )
        fig.rows.append(
            Row(
                f"  @ {rate // 1000}k: books received/s; verified / wrong / resyncs / holes",
                "{} ; {} / {} / {} / {}".format(
                    fmt(run["received_per_s"]),
                    run["consumer"]["verified"],
                    run["consumer"]["wrong"],
                    run["builder"].get("resyncs"),
                    run["consumer"]["seq_holes"],
                ),
                f"{rate:,} ; n / 0 / 0 / 0",
                run["received_per_s"] / rate,
                judged(correct and run["received_per_s"] >= 0.95 * rate),
            )
        )
        hop = floor["latency_us"] or {}
        fig.rows.append(
            Row(
                f"  @ {rate // 1000}k: floor, one bare PUB->SUB hop, p50 / p99 (us)",
                f"{fmt(hop.get('p50_us'))} / {fmt(hop.get('p99_us'))}",
                "the stack has 2 such hops",
                None,
                "info",
                hop.get("p50_us"),
                "us",
            )
        )
    return fig


# --------------------------------------------------------------------------- ingestor


def ingestor_rate(base: Path, t: Timing) -> FigureResult:
    """Bare websockets client vs ingestor, alternately, against one ws_blaster --max."""
    fig = FigureResult("ingestor")
    bare_rates: list[float] = []
    ingestor_rates: list[float] = []
    runs: list[dict[str, Any]] = []
    with Stage(base, "ingestor") as stage:
        ws = stage.add(
            Proc.helper(
                "ws_blaster", "ws_blaster", ["--symbols", str(t.symbols), "--max"], stage.dir
            )
        )
        ws.wait_ready()
        port = ws.ready.read_text()
        url = f"ws://127.0.0.1:{port}/v5/public/linear"
        for rep in range(t.ws_reps):
            client = stage.add(
                Proc.helper(
                    f"ws_client-{rep}",
                    "ws_client",
                    [
                        "--url",
                        url,
                        "--symbols",
                        str(t.symbols),
                        "--warmup",
                        str(t.ws_warmup),
                        "--seconds",
                        str(t.ws_seconds),
                    ],
                    stage.dir,
                )
            )
            client.wait_exit(t.ws_warmup + t.ws_seconds + 60)
            got = client.result()
            bare = window_rate(got, "data")
            bare_rates.append(bare)
            start, end = got["window"]
            runs.append(
                {
                    "kind": "bare",
                    "rate": bare,
                    "cpu": stage.sampler.cpu_share(client.name, start, end),
                    "server_cpu": stage.sampler.cpu_share("ws_blaster", start, end),
                    "other_cpu": stage.sampler.other_share(start, end),
                }
            )
            progress(f"ingestor figure: bare websockets client {bare:,.0f} frames/s")

            ep = Endpoints.in_dir(stage.dir, f"-{rep}")
            config = gateway_config(
                stage.dir / f"gateway-{rep}.toml",
                raw=ep.raw,
                control=ep.control,
                pub=ep.pub,
                snapshot=ep.snapshot,
                ws_url=f"ws://127.0.0.1:{port}/v5/public",
                symbols=[frames.symbol(i) for i in range(t.symbols)],
                stats_interval=0.5,
            )
            sink_args = ["--mode", "pull", "--endpoint", ep.raw]
            sink_args += ["--warmup", str(t.ws_warmup), "--seconds", str(t.ws_seconds)]
            sink = stage.add(Proc.helper(f"sink-{rep}", "consumer", sink_args, stage.dir))
            sink.wait_ready()
            ingestor = stage.add(Proc.service(f"ingestor-{rep}", "ingestor", config, stage.dir))
            sink.wait_exit(t.ws_warmup + t.ws_seconds + 60)
            stage.sampler.sample()
            ingestor.stop()
            got = sink.result()
            if got["first"] is None:
                raise BenchError("the ingestor forwarded nothing")
            start, end = got["window"]
            lines = in_window(stats_lines(ingestor), start, end)
            own = counter_rate(lines, "frames_in")
            forwarded = window_rate(got, "data")
            rate = own if own is not None else forwarded
            ingestor_rates.append(rate)
            runs.append(
                {
                    "kind": "ingestor",
                    "rate": rate,
                    "rate_from": "ingestor stats" if own is not None else "sink",
                    "forwarded_at_sink": forwarded,
                    "dropped": lines[-1].get("dropped") if lines else None,
                    "sink_seq_holes": got["seq_holes"],
                    "cpu": stage.sampler.cpu_share(ingestor.name, start, end),
                    "sink_cpu": stage.sampler.cpu_share(sink.name, start, end),
                    "server_cpu": stage.sampler.cpu_share("ws_blaster", start, end),
                    "other_cpu": stage.sampler.other_share(start, end),
                }
            )
            progress(f"ingestor figure: ingestor {rate:,.0f} frames/s")
    bare, ing = statistics.median(bare_rates), statistics.median(ingestor_rates)
    fig.details = {"runs": runs, "symbols": t.symbols}
    fig.rows = [
        Row(
            "ingestor receive rate (frames/s, websockets server flat out)",
            fmt(ing),
            f">= {INGESTOR_TARGET:.0%} of bare {fmt(bare)}",
            ing / bare if bare else None,
            judged(bare > 0 and ing / bare >= INGESTOR_TARGET),
            ing,
            "frames/s",
        ),
        Row(
            "bare websockets client receive rate (frames/s)",
            fmt(bare),
            "-",
            None,
            "info",
            bare,
            "frames/s",
        ),
    ]
    return fig


def failed(name: str, exc: BaseException) -> FigureResult:
    """The figure that could not be measured, as one ERROR row."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FigureResult(name, [Row(name, "-", "-", None, ERROR)], {}, text[:300])

"""Throughput (``make bench``): book_builder's sustained output with a backlog in front of
it, and the pass-through ceiling measured the same way right after it, alternately."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mdgw.testing.bench import profiling
from mdgw.testing.bench.common import progress
from mdgw.testing.bench.measure import (
    VERIFY_EVERY,
    Timing,
    builder_counters,
    counter_rate,
    fmt,
    gather_into,
    in_window,
    problems_of,
    sub_rates,
    timeline_rate,
    window_rate,
)
from mdgw.testing.bench.report import FigureResult, Row, judged
from mdgw.testing.bench.scraper import Scraper
from mdgw.testing.bench.stage import Stage
from mdgw.testing.config import gateway_config
from mdgw.testing.processes import HarnessError, Helper, Process, Service, clean_env

__all__ = ["throughput"]

BUILDER_TARGET = 120_000  # frames/s
JOURNAL_RATIO_TARGET = 0.9  # builder throughput with the journal on / off


def _pipe(
    base: Path,
    kind: str,
    t: Timing,
    profile: Path | None = None,
    rep: int = 0,
    *,
    journal: bool = False,
    scrape: bool | None = None,
) -> dict[str, Any]:
    """Blaster -> builder (or pass-through) -> consumer; the consumer's rate in its window.

    With ``profile``, the builder is profiled (:mod:`.profiling`) and the summary kept.
    With ``journal``, the builder journals into the stage's directory (the real disk).
    With ``scrape`` not None, the builder serves /metrics (``--metrics-port auto``), and
    with ``scrape`` True a :class:`~mdgw.testing.bench.scraper.Scraper` GETs it every second.
    """
    spy = profiling.py_spy() if profile is not None else None
    cprof = profile / "book_builder.cprofile" if profile is not None and spy is None else None
    label = f"{kind}+journal" if journal else kind
    if scrape is not None:
        label = f"{label}-{'scraped' if scrape else 'idle'}"
    scraper: Scraper | None = None
    with Stage(base, f"{label}-{rep + 1}") as stage:
        ep = stage.endpoints()
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
                journal_dir=stage.dir / "journal" if journal else None,
            )
            if cprof is not None:
                argv = profiling.cprofile_argv("book_builder", cprof)
                env = clean_env(MDGW_CONFIG=str(config))
                hub = stage.add(
                    Process("book_builder", argv, stage.dir / "book_builder.log", env=env)
                )
            else:
                args = [] if scrape is None else ["--metrics-port", "auto"]
                hub = stage.add(
                    Service("book_builder", config, stage.dir / "book_builder.log", args=args)
                )
            hub.wait_event("book_builder_started")
            if scrape is not None:
                port = hub.wait_event("metrics_listening")["port"]
                if scrape:
                    scraper = Scraper(f"http://127.0.0.1:{port}/metrics", interval=1.0)
            consumer_args += ["--subscribe", "book.", "--subscribe", "status."]
            consumer_args += ["--verify-every", str(VERIFY_EVERY)]
        else:
            hub = stage.add(
                Helper("passthrough", "passthrough", ["--raw", ep.raw, "--pub", ep.pub], stage.dir)
            )
            hub.wait_ready()
            consumer_args += ["--payload", "raw"]
        consumer = stage.add(Helper("consumer", "consumer", consumer_args, stage.dir))
        consumer.wait_ready()
        blaster = stage.add(
            Helper(
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
            raise HarnessError(f"{kind}: the consumer received nothing")
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
            lines = in_window(hub.stats_lines(), start, end)
            out["builder_books_per_s"] = [line.get("books_per_s") for line in lines]
            # The builder's own pub_ns - recv_ns: here, how long frames waited in the pipe.
            queue = [float(x) for x in (line.get("latency_p50_us") for line in lines) if x]
            out["queue_delay_ms"] = statistics.median(queue) / 1000 if queue else None
            out["builder"] = builder_counters(hub)
            out["problems"] = problems_of(got, out["builder"])
            out["builder_books_out_per_s"] = counter_rate(lines, "books_out")
            if journal:
                out["journal"] = _journal_use(hub.stats_lines(), stage.dir / "journal")
        else:
            # The pass-through's own count of what it published: the consumer, which parses
            # what it counts, may fall behind it (and lose messages at the PUB).
            assert isinstance(hub, Helper)
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


def _journal_use(lines: list[dict[str, Any]], directory: Path) -> dict[str, Any]:
    """What the journal wrote: its final counters and the segment files' size on disk."""
    final = (lines[-1].get("journal") if lines else None) or {}
    on_disk = sum(p.stat().st_size for p in directory.glob("*.mdj"))
    envelopes = final.get("envelopes") or 0
    return {
        **final,
        "bytes_on_disk": on_disk,
        "bytes_per_frame": on_disk / envelopes if envelopes else None,
        "raw_bytes_per_frame": final.get("raw_bytes", 0) / envelopes if envelopes else None,
    }


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
        "journal": _combine_journal([run["journal"] for run in runs if "journal" in run]),
        "consumer": consumer,
        "problems": [p for run in runs for p in run["problems"]],
    }


def _combine_journal(uses: list[dict[str, Any]]) -> dict[str, Any]:
    """The journaled runs' disk use, summed: bytes per frame over all of them."""
    envelopes = sum(u.get("envelopes") or 0 for u in uses)
    on_disk = sum(u["bytes_on_disk"] for u in uses)
    raw = sum(u.get("raw_bytes") or 0 for u in uses)
    return {
        "envelopes": envelopes,
        "bytes_on_disk": on_disk,
        "bytes_per_frame": on_disk / envelopes if envelopes else None,
        "raw_bytes_per_frame": raw / envelopes if envelopes else None,
        "holes": sum(u.get("holes") or 0 for u in uses),
        "records_lost": sum(u.get("records_lost") or 0 for u in uses),
    }


def saturated(run: dict[str, Any]) -> bool:
    """Whether the blaster found the pipe full during the window: then the process under
    test, not the blaster, set the rate."""
    return bool(run.get("pipe_full_per_s"))


def throughput(base: Path, t: Timing, profile: Path | None = None) -> FigureResult:
    fig = FigureResult("throughput")
    profile_dir = profile
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {
        "book_builder": [],
        "book_builder+journal": [],
        "passthrough": [],
    }
    calls: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for rep in range(t.pipe_reps):  # alternately, so slow phases of the machine hit all
        # Journal off and on in turn, the other way round in the next repetition (ABBA).
        order = [False, True] if rep % 2 == 0 else [True, False]
        for journal in order:
            key = "book_builder+journal" if journal else "book_builder"
            spied = None if journal else profile
            pipe = partial(_pipe, base, "book_builder", t, spied, rep, journal=journal)
            calls.append((key, pipe))
        profile = None
        calls.append(("passthrough", partial(_pipe, base, "passthrough", t, None, rep)))
    # --quick: all at once, unless the builder is profiled (the profile wants it alone).
    together = t.concurrent and profile_dir is None
    gather_into(runs, calls, together)
    fig.details = {**runs, "symbols": t.symbols}
    builder = _combine(runs["book_builder"], "book_builder")
    journaled = _combine(runs["book_builder+journal"], "book_builder")
    ceiling = _combine(runs["passthrough"], "passthrough")
    fig.details["combined"] = {
        "book_builder": builder,
        "book_builder+journal": journaled,
        "passthrough": ceiling,
    }
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
        *_journal_rows(journaled, rate, own),
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
    problems = builder["problems"] + journaled["problems"]
    if problems:
        fig.details["problems"] = problems
    return fig


def _journal_rows(journaled: dict[str, Any], rate_off: float, own_off: float | None) -> list[Row]:
    """Throughput with the journal on as a ratio to off (same run), and its size on disk."""
    rate = journaled["median_rate"]
    ratio = rate / rate_off if rate and rate_off else None
    use = journaled["journal"]
    per_frame = use["bytes_per_frame"]
    # Per CPU-second of the whole process, the writer thread's compression included: the
    # journal's cost in CPU, much less sensitive than the rate to a busy machine.
    own = journaled["per_cpu_second"]
    return [
        Row(
            "book_builder throughput, journal on (books/s; ratio to journal off)",
            fmt(rate),
            f">= {JOURNAL_RATIO_TARGET:g} x off ({fmt(rate_off)})",
            ratio,
            judged(ratio is not None and ratio >= JOURNAL_RATIO_TARGET and not use["holes"]),
            rate,
            "books/s",
        ),
        Row(
            "  books per CPU-second, journal on (ratio to journal off)",
            fmt(own),
            f"journal off {fmt(own_off)} per CPU-s",
            own / own_off if own and own_off else None,
            "info",
            own,
            "books/CPU-s",
        ),
        Row(
            "  journal bytes per frame on disk (envelope bytes per frame; holes)",
            fmt(per_frame, 1),
            f"raw {fmt(use['raw_bytes_per_frame'], 1)}; {use['holes']} holes",
            None,
            "info",
            per_frame,
            "bytes/frame",
        ),
    ]

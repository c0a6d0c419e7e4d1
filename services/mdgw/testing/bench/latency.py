"""Latency (``make bench``): ingestor receive -> consumer receive through the whole stack
at a fixed websocket frame rate, next to the floor of one bare PUB -> SUB hop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdgw.testing.bench.common import progress
from mdgw.testing.bench.measure import (
    VERIFY_EVERY,
    Timing,
    builder_counters,
    fmt,
    problems_of,
    quiesce,
    stack_config,
    window_rate,
)
from mdgw.testing.bench.report import FigureResult, Row, judged
from mdgw.testing.bench.stage import Stage
from mdgw.testing.processes import HarnessError, Helper, Service

__all__ = ["latency"]

LATENCY_TARGETS = {2_000: {"p50": 100.0, "p99": 500.0}, 30_000: {"p99": 3_000.0}}  # µs
CONFLATED_MAX_RATE = 10.0  # books.max_rate of the conflated run at the highest rate


def latency_run(
    base: Path, rate: int, symbols: int, warmup: float, seconds: float, *, max_rate: float = 0.0
) -> dict[str, Any]:
    """ws_blaster at ``rate`` -> ingestor -> book_builder -> consumer (latency samples)."""
    with Stage(base, f"latency-{rate}" + (f"-max{max_rate:g}" if max_rate else "")) as stage:
        ws = stage.add(
            Helper(
                "ws_blaster",
                "ws_blaster",
                ["--symbols", str(symbols), "--rate", str(rate)],
                stage.dir,
            )
        )
        ws.wait_ready()
        ep = stage.endpoints()
        config = stack_config(
            stage, ep, ws.ready.read_text(), symbols, trades=False, max_rate=max_rate
        )
        builder = stage.add(Service("book_builder", config, stage.dir / "book_builder.log"))
        builder.wait_event("book_builder_started")
        consumer_args = ["--endpoint", ep.pub, "--subscribe", "book.", "--subscribe", "status."]
        consumer_args += ["--latency", "--verify-every", str(VERIFY_EVERY)]
        consumer_args += ["--warmup", str(warmup), "--seconds", str(seconds)]
        consumer = stage.add(Helper("consumer", "consumer", consumer_args, stage.dir))
        consumer.wait_ready()
        ingestor = stage.add(Service("ingestor", config, stage.dir / "ingestor.log"))
        ingestor.wait_event("ingestor_started")
        consumer.wait_exit(warmup + seconds + 60)
        stage.sampler.sample()
        quiesce(ws)
        builder.stop()
        ingestor.stop()
        ws.stop()
        got = consumer.result()
        if got["first"] is None:
            raise HarnessError(f"latency at {rate}/s: the consumer received nothing")
        start, end = got["window"]
        ingestor_lines = ingestor.stats_lines()
        counters = builder_counters(builder)
        out = {
            "rate": rate,
            "max_rate": max_rate,
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
        pub = stage.endpoints().pub
        consumer_args = ["--endpoint", pub, "--latency", "--warmup", str(warmup)]
        consumer_args += ["--seconds", str(seconds)]
        consumer = stage.add(Helper("consumer", "consumer", consumer_args, stage.dir))
        consumer.wait_ready()
        sender = stage.add(Helper("hop", "hop", ["--pub", pub, "--rate", str(rate)], stage.dir))
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
            _received_row(
                f"  @ {rate // 1000}k",
                run,
                f"{rate:,}",
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
    if t.latency_seconds:
        rate, seconds = t.latency_seconds[-1]
        fig.rows.extend(conflated_rows(base, t, rate, seconds, fig.details.get(str(rate))))
    return fig


def _received_row(
    label: str, run: dict[str, Any], expected: str, ratio: float | None, status: str
) -> Row:
    """How many books a latency run's consumer received, and whether they were right."""
    return Row(
        f"{label}: books received/s; verified / wrong / resyncs / holes",
        "{} ; {} / {} / {} / {}".format(
            fmt(run["received_per_s"]),
            run["consumer"]["verified"],
            run["consumer"]["wrong"],
            run["builder"].get("resyncs"),
            run["consumer"]["seq_holes"],
        ),
        f"{expected} ; n / 0 / 0 / 0",
        ratio,
        status,
    )


def conflated_rows(
    base: Path, t: Timing, rate: int, seconds: float, plain: dict[str, Any] | None
) -> list[Row]:
    """The same burst with books.max_rate: what conflation takes off the builder and the
    consumer. Its latency includes up to 1 / max_rate of waiting by design."""
    run = latency_run(base, rate, t.symbols, t.latency_warmup, seconds, max_rate=CONFLATED_MAX_RATE)
    t_key = f"{rate}-max_rate-{CONFLATED_MAX_RATE:g}"
    label = f"  @ {rate // 1000}k, books.max_rate = {CONFLATED_MAX_RATE:g}"
    expected = min(rate, t.symbols * CONFLATED_MAX_RATE)
    lat = run["latency_us"] or {}
    correct = not run["problems"]

    def cpu(r: dict[str, Any] | None, name: str) -> str:
        value = (r or {}).get("cpu", {}).get(name)
        return "-" if value is None else f"{value:.2f}"

    run["figure_key"] = t_key
    rows = [
        _received_row(
            label,
            run,
            f"<= {expected:,.0f}",
            None,
            judged(correct and run["received_per_s"] <= 1.05 * expected),
        ),
        Row(
            f"{label}: CPU book_builder / consumer (cores; without max_rate)",
            f"{cpu(run, 'book_builder')} / {cpu(run, 'consumer')}",
            f"{cpu(plain, 'book_builder')} / {cpu(plain, 'consumer')}",
            None,
            "info",
        ),
        Row(
            f"{label}: latency p50 / p99 (us; includes the conflation wait)",
            f"{fmt(lat.get('p50_us'))} / {fmt(lat.get('p99_us'))}",
            f"wait <= {1e6 / CONFLATED_MAX_RATE:,.0f}",
            None,
            "info",
            lat.get("p99_us"),
            "us",
        ),
    ]
    if plain is not None:
        plain["conflated"] = run
    return rows

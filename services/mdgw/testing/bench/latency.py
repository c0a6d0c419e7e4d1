"""Latency (``make bench``): ingestor receive -> consumer receive through the whole stack
at a fixed websocket frame rate, next to its floors measured in the same run: the same rate
through two bare hops (PUSH -> PULL -> PUB -> SUB through a pass-through that does no work),
the path of the gateway without the gateway; and after the stack, the same two hops loaded
with the stack's CPU per message (the sender spins up to the websocket server's and the
ingestor's, the relay up to the builder's), the path of the gateway with its CPU but
without its code; and the same with the stack's four processes and seven busy threads (a
TCP sender for the websocket server, an asyncio relay PUSHing for the ingestor, the
pass-through for the builder), each spinning its own process's CPU per message."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mdgw.testing.bench.common import progress
from mdgw.testing.bench.measure import (
    VERIFY_EVERY,
    Timing,
    builder_counters,
    counter_rate,
    fmt,
    gather,
    in_window,
    problems_of,
    quiesce,
    stack_config,
    window_rate,
)
from mdgw.testing.bench.report import ERROR, FigureResult, Row, judged
from mdgw.testing.bench.stage import Stage
from mdgw.testing.processes import HarnessError, Helper, Service

__all__ = ["four_process_floor", "latency", "stack_cpu_per_message"]

LATENCY_TARGETS = {2_000: {"p99": 500.0}, 30_000: {"p99": 3_000.0}}  # µs
# Targets relative to the two-bare-hop floor of the same run (issue 16): rate -> {key: x floor}.
FLOOR_TARGETS = {2_000: {"p50": 1.3}}
CONFLATED_MAX_RATE = 10.0  # books.max_rate of the conflated run at the highest rate
# The p99 rows say whether the stack is within this many times the loaded four processes'
# p99 (information, not a target: issue 16's "show the floor in the same run").
WITHIN_FOUR_PROCESSES = 1.25
# The loaded four processes carry messages of the stack's sizes: a depth-50 delta frame of
# .frames is 187-239 bytes, a `book` payload at the stack's publish depth of 25 ~1,200.
FRAME_BYTES = 200
BOOK_BYTES = 1_200


def latency_run(
    base: Path,
    rate: int,
    symbols: int,
    warmup: float,
    seconds: float,
    *,
    max_rate: float = 0.0,
    min_samples: int = 0,
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
        consumer_args += _min_samples(min_samples)
        consumer = stage.add(Helper("consumer", "consumer", consumer_args, stage.dir))
        consumer.wait_ready()
        ingestor = stage.add(Service("ingestor", config, stage.dir / "ingestor.log"))
        ingestor.wait_event("ingestor_started")

        def stop() -> None:
            quiesce(ws)
            builder.stop()
            ingestor.stop()
            ws.stop()

        got, start, end = _consumer_window(
            stage, consumer, warmup + seconds + 60, stop, f"latency at {rate}/s"
        )
        ingestor_lines = ingestor.stats_lines()
        counters = builder_counters(builder)
        out = {
            "rate": rate,
            "max_rate": max_rate,
            "received_per_s": window_rate(got, "book"),
            "ingestor_frames_per_s": counter_rate(
                in_window(ingestor_lines, start, end), "frames_in"
            ),
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


def _min_samples(n: int) -> list[str]:
    """The consumer's option to hold its window open for ``n`` samples (none when 0)."""
    return ["--min-samples", str(n)] if n else []


def _floor_consumer(
    stage: Stage, endpoint: str, warmup: float, seconds: float, min_samples: int
) -> Helper:
    """The floors' consumer, started and ready: a latency sample of every message on
    ``endpoint`` over ``seconds`` after ``warmup``."""
    args = ["--endpoint", endpoint, "--latency", "--warmup", str(warmup)]
    args += ["--seconds", str(seconds), *_min_samples(min_samples)]
    consumer = stage.add(Helper("consumer", "consumer", args, stage.dir))
    consumer.wait_ready()
    return consumer


def _consumer_window(
    stage: Stage, consumer: Helper, timeout: float, stop: Callable[[], None], what: str
) -> tuple[dict[str, Any], float, float]:
    """Wait for the consumer's window to end, sample every process's CPU, ``stop()`` the
    rest, and return the consumer's result and its window's (start, end)."""
    consumer.wait_exit(timeout)
    stage.sampler.sample()
    stop()
    got = consumer.result()
    if got["first"] is None:
        raise HarnessError(f"{what}: the consumer received nothing")
    start, end = got["window"]
    return got, start, end


def hop_floor(
    base: Path, rate: int, warmup: float, seconds: float, min_samples: int = 0
) -> dict[str, Any]:
    """One bare PUB -> SUB hop at ``rate`` (:mod:`.hop`): the floor under every hop."""
    with Stage(base, f"hop-{rate}") as stage:
        pub = stage.endpoints().pub
        consumer = _floor_consumer(stage, pub, warmup, seconds, min_samples)
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


def pipeline_floor(
    base: Path,
    rate: int,
    warmup: float,
    seconds: float,
    min_samples: int = 0,
    *,
    relay_cpu_ns: int = 0,
    sender_cpu_ns: int = 0,
) -> dict[str, Any]:
    """The gateway's two hops with nothing in them: :mod:`.hop` PUSHes at ``rate`` (paced as
    :mod:`.ws_blaster`) into a :mod:`.passthrough` (PULL -> PUB, the builder's drain without
    the hub) and the consumer SUBs: the floor under the stack's latency on this machine and
    at this moment, and what scheduling three busy processes on its cores costs.

    Loaded (CPU figures > 0, from :func:`stack_cpu_per_message`): the relay spins between each
    message's receive and its send until it has used ``relay_cpu_ns`` of CPU per message,
    the sender before each stamp until ``sender_cpu_ns`` (:class:`.common.CpuBudget`), so
    that the three processes need the CPU of the stack's four: the floor under four
    processes that need that much CPU on this machine, whatever their code."""
    loaded = bool(relay_cpu_ns or sender_cpu_ns)
    what = "loaded two hops" if loaded else "two bare hops"
    with Stage(base, f"{'loaded' if loaded else 'pipeline'}-{rate}") as stage:
        ep = stage.endpoints()
        relay_args = ["--raw", ep.raw, "--pub", ep.pub, "--cpu-ns", str(relay_cpu_ns)]
        relay = stage.add(Helper("passthrough", "passthrough", relay_args, stage.dir))
        relay.wait_ready()
        consumer = _floor_consumer(stage, ep.pub, warmup, seconds, min_samples)
        sender_args = ["--push", ep.raw, "--rate", str(rate), "--cpu-ns", str(sender_cpu_ns)]
        sender = stage.add(Helper("hop", "hop", sender_args, stage.dir))
        sender.wait_ready()

        def stop() -> None:
            sender.stop()
            relay.stop()

        got, start, end = _consumer_window(
            stage, consumer, warmup + seconds + 60, stop, f"{what} at {rate}/s"
        )
        cpu = {p.name: stage.sampler.cpu_share(p.name, start, end) for p in stage.procs}
        other = stage.sampler.other_share(start, end)
    lat = got["latency"] or {}
    progress(
        f"{what} at {rate:,}/s: p50 {fmt(lat.get('p50_us'))} us, "
        f"p99 {fmt(lat.get('p99_us'))} us, p99.9 {fmt(lat.get('p999_us'))} us"
    )
    return {
        "latency_us": got["latency"],
        "latency_per_second": got["latency_per_second"],
        "received_per_s": window_rate(got, "book"),
        "seq_holes": got["seq_holes"],
        "cpu_ns_per_message": {"relay": relay_cpu_ns, "sender": sender_cpu_ns},
        "cpu": cpu,
        "other_cpu": other,
    }


def four_process_floor(
    base: Path,
    rate: int,
    warmup: float,
    seconds: float,
    min_samples: int = 0,
    *,
    sender_cpu_ns: int,
    relay_cpu_ns: int,
    builder_cpu_ns: int,
    line_bytes: int = FRAME_BYTES,
    payload_bytes: int = BOOK_BYTES,
) -> dict[str, Any]:
    """The stack's four processes and seven busy threads without its code: a
    :mod:`.stream_sender` (the websocket server: asyncio, paced as it is, a plain TCP stream,
    no ZeroMQ) -> a :mod:`.stream_relay` (the ingestor: reads the stream with asyncio, stamps,
    PUSHes over ipc; + a libzmq I/O thread) -> a :mod:`.passthrough` (the builder: PULL ->
    PUB; + an I/O thread) -> the consumer (+ an I/O thread), each spinning the CPU per
    message of the stack's process it stands for (``*_cpu_ns``, from
    :func:`stack_cpu_per_message`), with messages of about the stack's sizes (``line_bytes``
    on the stream, ``payload_bytes`` through the ZeroMQ hops). The loaded two hops fold the
    server and the ingestor into one process with one thread fewer; this floor leaves the
    code as the only difference from the stack."""
    with Stage(base, f"loaded4p-{rate}") as stage:
        ep = stage.endpoints()
        builder_args = ["--raw", ep.raw, "--pub", ep.pub, "--cpu-ns", str(builder_cpu_ns)]
        builder = stage.add(Helper("passthrough", "passthrough", builder_args, stage.dir))
        builder.wait_ready()
        consumer = _floor_consumer(stage, ep.pub, warmup, seconds, min_samples)
        sender_args = ["--rate", str(rate), "--cpu-ns", str(sender_cpu_ns)]
        sender_args += ["--line-bytes", str(line_bytes)]
        sender = stage.add(Helper("stream_sender", "stream_sender", sender_args, stage.dir))
        sender.wait_ready()
        relay_args = ["--connect", f"127.0.0.1:{sender.ready.read_text()}", "--push", ep.raw]
        relay_args += ["--cpu-ns", str(relay_cpu_ns), "--payload-bytes", str(payload_bytes)]
        relay = stage.add(Helper("stream_relay", "stream_relay", relay_args, stage.dir))
        relay.wait_ready()

        def stop() -> None:
            sender.stop()
            relay.stop()
            builder.stop()

        got, start, end = _consumer_window(
            stage, consumer, warmup + seconds + 60, stop, f"loaded four processes at {rate}/s"
        )
        cpu = {p.name: stage.sampler.cpu_share(p.name, start, end) for p in stage.procs}
        other = stage.sampler.other_share(start, end)
        relayed = relay.result()
    lat = got["latency"] or {}
    progress(
        f"loaded four processes at {rate:,}/s: p50 {fmt(lat.get('p50_us'))} us, "
        f"p99 {fmt(lat.get('p99_us'))} us, p99.9 {fmt(lat.get('p999_us'))} us"
    )
    return {
        "latency_us": got["latency"],
        "latency_per_second": got["latency_per_second"],
        "received_per_s": window_rate(got, "book"),
        "seq_holes": got["seq_holes"],
        "relay_dropped": relayed.get("dropped"),
        "cpu_ns_per_message": {
            "sender": sender_cpu_ns,
            "relay": relay_cpu_ns,
            "passthrough": builder_cpu_ns,
        },
        "cpu": cpu,
        "other_cpu": other,
    }


def stack_cpu_per_message(run: dict[str, Any]) -> dict[str, Any]:
    """The CPU per message (ns) that the loaded floor's relay and sender spin up to: that of
    the stack's processes each stands for, measured in the stack's window. The relay stands for
    the builder (its CPU / books received per second), the sender for the ingestor and the
    websocket server (their CPU / the ingestor's frames per second, or the offered rate
    without its stats lines): in the stack most of their work on a frame comes before the
    ingestor's ``recv_ns``, as the sender's spin comes before its stamp. The consumer is the
    same process in both and spins nothing.

    ``relay_ns`` / ``sender_ns`` are None when a CPU figure or a rate is missing."""
    cpu = run["cpu"]
    books = run.get("received_per_s") or 0.0
    frames = run.get("ingestor_frames_per_s") or float(run["rate"])

    def per_message(share: float | None, per_s: float) -> float | None:
        return None if share is None or per_s <= 0 else share / per_s * 1e9

    builder = per_message(cpu.get("book_builder"), books)
    ingestor = per_message(cpu.get("ingestor"), frames)
    server = per_message(cpu.get("ws_blaster"), frames)
    return {
        "relay_ns": None if builder is None else round(builder),
        "sender_ns": None if ingestor is None or server is None else round(ingestor + server),
        "stack_cpu_ns_per_message": {
            "book_builder": builder,
            "ingestor": ingestor,
            "ws_blaster": server,
        },
    }


def _stack_and_loaded_floor(
    floor_args: tuple[Path, int, float, float, int], stack: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The stack, then the loaded two hops and the loaded four processes (whose CPU figures
    are the stack's), one after the other even when a figure's stages run at once: the
    stack's result with ``loaded_floor`` and ``loaded_four_processes`` in it."""
    run = stack()
    cpu = stack_cpu_per_message(run)
    relay_ns, sender_ns = cpu["relay_ns"], cpu["sender_ns"]
    per_message = cpu["stack_cpu_ns_per_message"]
    missing = {
        "stack_cpu_ns_per_message": per_message,
        "error": "a CPU figure of the stack is missing",
    }
    if not relay_ns or not sender_ns:
        progress(f"loaded floors at {run['rate']:,}/s: not run, a CPU figure is missing")
        run["loaded_floor"] = dict(missing)
        run["loaded_four_processes"] = dict(missing)
        return run
    loaded = pipeline_floor(*floor_args, relay_cpu_ns=relay_ns, sender_cpu_ns=sender_ns)
    loaded["stack_cpu_ns_per_message"] = per_message
    run["loaded_floor"] = loaded
    four = four_process_floor(
        *floor_args,
        sender_cpu_ns=round(per_message["ws_blaster"]),
        relay_cpu_ns=round(per_message["ingestor"]),
        builder_cpu_ns=relay_ns,
    )
    four["stack_cpu_ns_per_message"] = per_message
    run["loaded_four_processes"] = four
    return run


def _target(
    rate: int, key: str, floor: dict[str, Any], loaded: dict[str, Any], four: dict[str, Any]
) -> tuple[float | None, str]:
    """The target of one latency figure and how the table states it (``floor``, ``loaded``
    and ``four``: the bare and the loaded two hops' and the loaded four processes' latency
    summaries)."""
    times = FLOOR_TARGETS.get(rate, {}).get(key)
    if times is not None:
        base = floor.get(f"{key}_us")
        if base is None:
            return None, f"<= {times:g} x floor (not measured)"
        return times * base, f"<= {times:g} x floor {fmt(base)} = {fmt(times * base)}"
    target = LATENCY_TARGETS.get(rate, {}).get(key)
    if target is None:
        return None, "-"
    text = f"<= {target:,.0f}"
    if floor.get(f"{key}_us") is not None:
        text += f"; floor {fmt(floor[f'{key}_us'])}"
    if loaded.get(f"{key}_us") is not None:
        text += f", loaded {fmt(loaded[f'{key}_us'])}"
    if four.get(f"{key}_us") is not None:
        text += f", loaded 4p {fmt(four[f'{key}_us'])}"
    return target, text


def _against_four(value: float | None, four: dict[str, Any]) -> str:
    """How the stack's p99 compares with the loaded four processes' (empty without both)."""
    base = four.get("p99_us")
    if value is None or not base:
        return ""
    ratio = value / base
    within = "within" if ratio <= WITHIN_FOUR_PROCESSES else "not within"
    return f"; stack {ratio:.2f} x loaded 4p, {within} {WITHIN_FOUR_PROCESSES:g} x"


def latency(base: Path, t: Timing) -> FigureResult:
    fig = FigureResult("latency")
    # Per rate the one-hop floor, the bare two hops, the stack, the loaded two hops and the
    # loaded four processes, then the conflated run at the highest rate: one after the
    # other, or (--quick) all at once but for the stack and its loaded floors (which need
    # the stack's CPU figures).
    calls: list[Callable[[], dict[str, Any]]] = []
    stack: Callable[..., dict[str, Any]] | None = None
    for rate, seconds in t.latency_seconds:
        hop_s = min(seconds, t.hop_seconds)
        floor_args = (base, rate, t.latency_warmup / 2, hop_s, t.min_samples)
        stack = partial(
            latency_run, base, rate, t.symbols, t.latency_warmup, seconds, min_samples=t.min_samples
        )
        calls += [
            partial(hop_floor, *floor_args),
            partial(pipeline_floor, *floor_args),
            partial(_stack_and_loaded_floor, floor_args, stack),
        ]
    if stack is not None:  # the highest rate's stack again, conflated
        calls.append(partial(stack, max_rate=CONFLATED_MAX_RATE))
    measured = iter(gather(calls, t.concurrent))
    for rate, _ in t.latency_seconds:
        floor, pipeline, run = next(measured), next(measured), next(measured)
        run["hop_floor"] = floor
        run["pipeline_floor"] = pipeline
        loaded = run["loaded_floor"]
        fig.details[str(rate)] = run
        lat = run["latency_us"] or {}
        two_hops = pipeline["latency_us"] or {}
        loaded_hops = loaded.get("latency_us") or {}
        four = run["loaded_four_processes"].get("latency_us") or {}
        correct = not run["problems"]
        label = f"latency @ {rate // 1000}k frames/s"
        for key, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")):
            value = lat.get(f"{key}_us")
            target, target_text = _target(rate, key, two_hops, loaded_hops, four)
            if key == "p99":
                target_text += _against_four(value, four)
            if target is None:
                status = "ERROR" if target_text.endswith("(not measured)") else "info"
            else:
                status = judged(value is not None and value <= target and correct)
            fig.rows.append(
                Row(
                    f"{label}, {name} (us, ingestor recv -> consumer recv)",
                    fmt(value),
                    target_text,
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
        pipe_cpu = pipeline["cpu"]
        fig.rows.append(
            Row(
                f"  @ {rate // 1000}k: floor, two bare hops (PUSH->PULL->PUB->SUB, no work), "
                "p50 / p99 / p99.9 (us)",
                f"{fmt(two_hops.get('p50_us'))} / {fmt(two_hops.get('p99_us'))} / "
                f"{fmt(two_hops.get('p999_us'))}",
                "CPU relay / consumer {} / {}; others {}".format(
                    _cores(pipe_cpu.get("passthrough")),
                    _cores(pipe_cpu.get("consumer")),
                    _cores(pipeline["other_cpu"]),
                ),
                None,
                "info",
                two_hops.get("p99_us"),
                "us",
            )
        )
        fig.rows.append(_loaded_row(f"  @ {rate // 1000}k", run))
        fig.rows.append(_four_processes_row(f"  @ {rate // 1000}k", run))
    if t.latency_seconds:
        rate, seconds = t.latency_seconds[-1]
        fig.rows.extend(conflated_rows(next(measured), t, rate, fig.details.get(str(rate))))
    return fig


def _cores(*values: float | None) -> str:
    """CPU shares (cores) as the rows print them: their sum, or "-" when one is missing."""
    if any(v is None for v in values):
        return "-"
    return f"{sum(v or 0.0 for v in values):.2f}"


def _spin_row(figure: str, floor: dict[str, Any], cpu_text: Callable[[], str]) -> Row:
    """A loaded floor's row: its p50 / p99 / p99.9, and ``cpu_text()`` (its CPU beside the
    stack's, and the rate it kept); "not run" when it has an error."""
    if "error" in floor:
        return Row(figure, "-", f"not run: {floor['error']}", None, ERROR)
    lat = floor.get("latency_us") or {}
    return Row(
        figure,
        f"{fmt(lat.get('p50_us'))} / {fmt(lat.get('p99_us'))} / {fmt(lat.get('p999_us'))}",
        cpu_text(),
        None,
        "info",
        lat.get("p99_us"),
        "us",
    )


def _loaded_row(label: str, run: dict[str, Any]) -> Row:
    """The loaded two hops: their latency, and their CPU beside the stack's (relay against
    the builder, sender against the ingestor and the websocket server, consumer against
    the consumer) to show the load matched, and the rate they kept (below the offered
    rate, their p99 is a growing backlog's, which grows with the window's length)."""
    loaded = run["loaded_floor"]
    figure = (
        f"{label}: loaded floor, two hops spinning the stack's CPU per message, "
        "p50 / p99 / p99.9 (us)"
    )

    def cpu_text() -> str:
        cpu, stack = loaded["cpu"], run["cpu"]
        per_message = loaded["cpu_ns_per_message"]
        return (
            "CPU relay / sender / consumer {} / {} / {} (stack {} / {} / {}; {} / {} us a "
            "message); others {}; received {}/s".format(
                _cores(cpu.get("passthrough")),
                _cores(cpu.get("hop")),
                _cores(cpu.get("consumer")),
                _cores(stack.get("book_builder")),
                _cores(stack.get("ingestor"), stack.get("ws_blaster")),
                _cores(stack.get("consumer")),
                fmt(per_message["relay"] / 1000, 1),
                fmt(per_message["sender"] / 1000, 1),
                _cores(loaded["other_cpu"]),
                fmt(loaded["received_per_s"]),
            )
        )

    return _spin_row(figure, loaded, cpu_text)


def _four_processes_row(label: str, run: dict[str, Any]) -> Row:
    """The loaded four processes: their latency, and each process's CPU beside that of the
    stack's process it stands for, and the rate they kept."""
    four = run["loaded_four_processes"]
    figure = (
        f"{label}: loaded four processes, sender -> relay -> relay -> consumer spinning the "
        "stack's CPU per message, p50 / p99 / p99.9 (us)"
    )

    def cpu_text() -> str:
        cpu, stack = four["cpu"], run["cpu"]
        per_message = four["cpu_ns_per_message"]
        return (
            "CPU sender / relay / passthrough / consumer {} / {} / {} / {} (stack {} / {} / {} / "
            "{}; {} / {} / {} us a message); others {}; received {}/s".format(
                _cores(cpu.get("stream_sender")),
                _cores(cpu.get("stream_relay")),
                _cores(cpu.get("passthrough")),
                _cores(cpu.get("consumer")),
                _cores(stack.get("ws_blaster")),
                _cores(stack.get("ingestor")),
                _cores(stack.get("book_builder")),
                _cores(stack.get("consumer")),
                fmt(per_message["sender"] / 1000, 1),
                fmt(per_message["relay"] / 1000, 1),
                fmt(per_message["passthrough"] / 1000, 1),
                _cores(four["other_cpu"]),
                fmt(four["received_per_s"]),
            )
        )

    return _spin_row(figure, four, cpu_text)


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
    run: dict[str, Any], t: Timing, rate: int, plain: dict[str, Any] | None
) -> list[Row]:
    """The same burst with books.max_rate (``run``): what conflation takes off the builder
    and the consumer. Its latency includes up to 1 / max_rate of waiting by design."""
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

"""The latency figure's loaded floor: the two bare hops spinning the stack's CPU per message.

The spin and the budget are checked on CPU clocks (never on wall time: how long a spin takes
depends on the machine's load, what it burns must not); the figure's row by a short real
run of the latency figure (processes, sockets), whose numbers are only checked to exist.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mdgw.testing.bench.common import CpuBudget, spin
from mdgw.testing.bench.latency import four_process_floor, latency, stack_cpu_per_message
from mdgw.testing.bench.measure import QUICK

MS = 1_000_000  # ns


def test_spin_burns_its_threads_cpu_even_while_another_thread_holds_the_gil() -> None:
    # With a second Python thread spinning, this thread runs about half the time: a spin on
    # a wall clock (or on the process's clock, which both threads advance) would burn about
    # half of what it is told.
    stop = threading.Event()

    def rival() -> None:
        while not stop.is_set():
            pass

    other = threading.Thread(target=rival)
    other.start()
    try:
        before = time.thread_time_ns()
        spin(40 * MS)
        burnt = time.thread_time_ns() - before
    finally:
        stop.set()
        other.join()
    assert 40 * MS <= burnt < 80 * MS


def _messages(budget: CpuBudget, n: int, own_ns: int) -> int:
    """Process CPU (ns) of ``n`` messages that each cost ``own_ns`` of their own work."""
    budget.spend()  # the first message: the budget counts from here
    spin(own_ns)
    start = time.process_time_ns()
    for _ in range(n):
        budget.spend()
        spin(own_ns)
    return time.process_time_ns() - start


def test_the_budget_tops_a_process_up_to_its_cpu_per_message() -> None:
    n, per_message, own = 50, 1 * MS, 300_000
    used = _messages(CpuBudget(per_message), n, own)
    # Not n * (per_message + own): the process's own work counts against the budget.
    assert (n - 1) * per_message <= used < n * per_message + n * own // 2


def test_the_budget_spins_nothing_for_a_process_above_it() -> None:
    n, per_message, own = 50, 200_000, 1 * MS
    used = _messages(CpuBudget(per_message), n, own)
    assert n * own <= used < n * (own + per_message // 2)


def test_the_stack_cpu_per_message_is_its_cpu_over_its_rate() -> None:
    run = {
        "rate": 30_000,
        "received_per_s": 24_000.0,
        "ingestor_frames_per_s": 25_000.0,
        "cpu": {"book_builder": 0.48, "ingestor": 0.35, "ws_blaster": 0.1, "consumer": 0.4},
    }
    got = stack_cpu_per_message(run)
    assert got["relay_ns"] == 20_000  # the builder's CPU over the books it published
    assert got["sender_ns"] == 18_000  # ingestor + server over the frames the ingestor read
    # Without the ingestor's stats lines in the window: the offered rate.
    got = stack_cpu_per_message({**run, "ingestor_frames_per_s": None})
    assert got["sender_ns"] == 15_000
    missing = stack_cpu_per_message({**run, "cpu": {"book_builder": 0.48, "ingestor": None}})
    assert missing["relay_ns"] == 20_000 and missing["sender_ns"] is None
    assert stack_cpu_per_message({**run, "received_per_s": 0.0})["relay_ns"] is None


@pytest.mark.e2e
def test_a_short_latency_figure_has_a_loaded_floor_row(tmp_path: Path) -> None:
    t = replace(QUICK, latency_seconds=((30_000, 0.3),))
    fig = latency(tmp_path, t)

    rows = [r for r in fig.rows if r.figure.startswith("  @ 30k: loaded floor")]
    assert len(rows) == 1, [r.figure for r in fig.rows]
    row = rows[0]
    assert row.status == "info", row
    p50, p99, p999 = (float(v.replace(",", "")) for v in row.value.split(" / "))
    assert 0 < p50 <= p99 <= p999
    assert row.number is not None and abs(row.number - p99) <= 1
    assert "CPU relay / sender / consumer" in row.target and "received" in row.target
    p99_row = next(r for r in fig.rows if r.figure.startswith("latency @ 30k frames/s, p99 "))
    assert f"loaded {row.value.split(' / ')[1]}" in p99_row.target

    run = fig.details["30000"]
    loaded = run["loaded_floor"]
    asked = loaded["cpu_ns_per_message"]
    assert asked == {
        "relay": stack_cpu_per_message(run)["relay_ns"],
        "sender": stack_cpu_per_message(run)["sender_ns"],
    }
    assert asked["relay"] > 0 and asked["sender"] > 0
    for key in ("p50_us", "p99_us", "p999_us"):
        assert math.isfinite(loaded["latency_us"][key]) and loaded["latency_us"][key] > 0
    for name in ("passthrough", "hop", "consumer"):
        assert loaded["cpu"][name] > 0, loaded["cpu"]
    assert loaded["received_per_s"] > 0
    # The bare floor spins nothing.
    assert run["pipeline_floor"]["cpu_ns_per_message"] == {"relay": 0, "sender": 0}

    # The loaded four processes: each spins the CPU of the stack's process it stands for.
    rows = [r for r in fig.rows if r.figure.startswith("  @ 30k: loaded four processes")]
    assert len(rows) == 1 and rows[0].status == "info", [r.figure for r in fig.rows]
    four_p99 = rows[0].value.split(" / ")[1]
    assert f", loaded 4p {four_p99}" in p99_row.target
    assert " x loaded 4p, " in p99_row.target and "within 1.25 x" in p99_row.target
    four = run["loaded_four_processes"]
    per_message = stack_cpu_per_message(run)["stack_cpu_ns_per_message"]
    assert four["cpu_ns_per_message"] == {
        "sender": round(per_message["ws_blaster"]),
        "relay": round(per_message["ingestor"]),
        "passthrough": asked["relay"],
    }
    for name in ("stream_sender", "stream_relay", "passthrough", "consumer"):
        assert four["cpu"][name] > 0, four["cpu"]


@pytest.mark.e2e
def test_the_four_process_floor_runs_end_to_end_at_a_low_rate(tmp_path: Path) -> None:
    got = four_process_floor(
        tmp_path, 2_000, 0.2, 0.3, sender_cpu_ns=5_000, relay_cpu_ns=10_000, builder_cpu_ns=15_000
    )
    lat = got["latency_us"]
    assert lat["n"] > 0
    for key in ("p50_us", "p99_us", "p999_us"):
        assert math.isfinite(lat[key]) and lat[key] > 0
    assert lat["p50_us"] <= lat["p99_us"] <= lat["p999_us"]
    assert got["latency_per_second"], got
    assert got["received_per_s"] > 0 and got["seq_holes"] == 0 and got["relay_dropped"] == 0
    assert set(got["cpu"]) == {"stream_sender", "stream_relay", "passthrough", "consumer"}
    assert all(share is not None and share > 0 for share in got["cpu"].values()), got["cpu"]

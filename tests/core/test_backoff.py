"""Tests for mdgw.core.backoff: jittered capped backoff and the connection rate limiter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdgw.core.backoff import (
    Backoff,
    ConnectionRateLimiter,
)
from mdgw.core.bybit_spec import CONNECTION_WINDOW, MAX_NEW_CONNECTIONS


def test_delays_follow_capped_exponential_bases() -> None:
    # rng == 1.0 - tiny gives ~base; rng == 0.0 gives exactly base / 2.
    top = Backoff(0.5, 30.0, rng=lambda: 1.0)
    low = Backoff(0.5, 30.0, rng=lambda: 0.0)
    tops = [top.next_delay() for _ in range(12)]
    lows = [low.next_delay() for _ in range(12)]
    assert tops == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert lows == [t / 2 for t in tops]


@given(
    initial=st.floats(0.01, 10.0),
    ratio=st.floats(1.0, 1000.0),
    factor=st.floats(1.0, 4.0),
    seed=st.integers(0, 2**32),
)
def test_delays_stay_within_jitter_bounds(
    initial: float, ratio: float, factor: float, seed: int
) -> None:
    maximum = initial * ratio
    # rng() == 0 reads base / 2 exactly, so this sequence shows the bases themselves.
    halves = Backoff(initial, maximum, factor, rng=lambda: 0.0)
    jittered = Backoff(initial, maximum, factor, rng=random.Random(seed).random)
    previous_base = 0.0
    for _ in range(40):
        base = 2 * halves.next_delay()
        delay = jittered.next_delay()
        assert base >= previous_base  # monotone non-decreasing bases
        assert base <= maximum  # cap respected
        assert base / 2 <= delay <= base
        assert initial / 2 <= delay <= maximum
        previous_base = base
    assert base == pytest.approx(min(maximum, initial * factor**39))


def test_many_attempts_do_not_overflow() -> None:
    backoff = Backoff(1.0, 60.0, 10.0, rng=random.Random(1).random)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert 30.0 <= delay <= 60.0
    assert backoff.attempts == 5000


def test_reset_starts_over() -> None:
    backoff = Backoff(1.0, 60.0, rng=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff.attempts == 4
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == 0.5
    assert backoff.attempts == 1


def test_seeded_rng_is_deterministic() -> None:
    a = Backoff(1.0, 60.0, rng=random.Random(42).random)
    b = Backoff(1.0, 60.0, rng=random.Random(42).random)
    c = Backoff(1.0, 60.0, rng=random.Random(43).random)
    da = [a.next_delay() for _ in range(20)]
    assert da == [b.next_delay() for _ in range(20)]
    assert da != [c.next_delay() for _ in range(20)]


def test_out_of_range_rng_is_clamped() -> None:
    assert Backoff(2.0, 8.0, rng=lambda: -3.0).next_delay() == 1.0
    assert Backoff(2.0, 8.0, rng=lambda: 7.0).next_delay() == 2.0


@pytest.mark.parametrize(
    ("initial", "maximum", "factor"),
    [(0.0, 1.0, 2.0), (-1.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)],
)
def test_backoff_rejects_bad_parameters(initial: float, maximum: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, maximum, factor, rng=lambda: 0.5)


# --- connection rate limiter -----------------------------------------------------------------


def test_bybit_defaults() -> None:
    limiter = ConnectionRateLimiter()
    assert (limiter.max_events, limiter.window) == (500, 300.0)
    assert (MAX_NEW_CONNECTIONS, CONNECTION_WINDOW) == (500, 300.0)


def test_500_connections_in_5_minutes_then_wait_for_the_oldest() -> None:
    limiter = ConnectionRateLimiter(500, 300.0)
    t0 = 1000.0
    for i in range(500):  # one every 0.5 s: 500 within 250 s
        now = t0 + i * 0.5
        assert limiter.delay_until_allowed(now) == 0.0
        limiter.record(now)
    now = t0 + 260.0
    assert limiter.in_window(now) == 500
    assert limiter.delay_until_allowed(now) == pytest.approx(t0 + 300.0 - now)  # 40 s
    # Just before the oldest leaves: still blocked; when it leaves: allowed.
    assert limiter.delay_until_allowed(t0 + 299.9) == pytest.approx(0.1)
    assert limiter.delay_until_allowed(t0 + 300.0) == 0.0
    limiter.record(t0 + 300.0)
    # Now the next oldest (t0 + 0.5) is the one to wait for.
    assert limiter.delay_until_allowed(t0 + 300.0) == pytest.approx(0.5)


def test_burst_then_window_slides() -> None:
    limiter = ConnectionRateLimiter(3, 10.0)
    for now in (0.0, 1.0, 2.0):
        limiter.record(now)
    assert limiter.delay_until_allowed(2.0) == 8.0
    assert limiter.delay_until_allowed(10.0) == 0.0
    assert limiter.in_window(10.0) == 2
    assert limiter.in_window(12.0) == 0


def test_clock_going_backwards_is_clamped() -> None:
    limiter = ConnectionRateLimiter(2, 10.0)
    limiter.record(5.0)
    limiter.record(4.0)  # treated as 5.0
    assert limiter.delay_until_allowed(5.0) == 10.0
    assert limiter.delay_until_allowed(15.0) == 0.0


@given(st.lists(st.floats(0.0, 5.0), min_size=1, max_size=60), st.integers(1, 10))
def test_never_more_than_max_in_any_window(gaps: list[float], max_events: int) -> None:
    # A shell that always waits delay_until_allowed() never exceeds the cap.
    limiter = ConnectionRateLimiter(max_events, 10.0)
    now = 0.0
    starts: list[float] = []
    for gap in gaps:
        now += gap
        for _ in range(3):  # as a shell would: sleep, look again (float rounding may leave ~1e-15)
            delay = limiter.delay_until_allowed(now)
            if delay == 0.0:
                break
            assert delay > 0.0
            now += delay
        assert limiter.delay_until_allowed(now) == 0.0
        limiter.record(now)
        starts.append(now)
    for t in starts:
        assert sum(1 for s in starts if t <= s < t + 10.0) <= max_events


@pytest.mark.parametrize(("max_events", "window"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_limiter_rejects_bad_parameters(max_events: int, window: float) -> None:
    with pytest.raises(ValueError):
        ConnectionRateLimiter(max_events, window)

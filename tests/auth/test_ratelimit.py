"""Token buckets per key: a burst, a steady rate, bounded memory."""

from __future__ import annotations

import pytest

from runner.auth.ratelimit import RateLimiter, retry_after


def test_burst_then_steady_rate(clock):
    """A key gets ``burst`` requests at once, then one per 1/rate seconds."""
    limiter = RateLimiter(rate=2, burst=3, clock=clock.monotonic)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0  # another key has its own bucket
    clock.advance(0.5)
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0


def test_the_wait_is_the_time_to_refill_one_request(clock):
    """A part-refilled bucket asks to wait only for the missing part, as Retry-After says."""
    limiter = RateLimiter(rate=2, burst=3, clock=clock.monotonic)
    assert limiter.wait("a") == 0
    for _ in range(3):
        limiter.take("a")
    clock.advance(0.25)
    assert limiter.wait("a") == pytest.approx(0.25)
    assert limiter.take("a") == pytest.approx(0.25)
    clock.advance(0.5)  # 1.5 requests refilled: one may go now
    assert limiter.wait("a") == 0
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(0.25)


def test_by_default_ten_thousand_keys_are_remembered(clock):
    """The default limiter keeps the buckets of the 10,000 most recent keys."""
    limiter = RateLimiter(rate=1, burst=1, clock=clock.monotonic)
    limiter.take("first")
    limiter.take("second")
    for i in range(9_998):
        limiter.take(f"address:{i}")
    assert limiter.wait("first") > 0  # 10,000 keys: still limited, and now the most recent
    limiter.take("one more")
    assert limiter.wait("second") == 0  # the least recent was forgotten: a fresh bucket


def test_wait_spends_nothing(clock):
    """Looking at a bucket does not use it up."""
    limiter = RateLimiter(rate=1, burst=1, clock=clock.monotonic)
    assert limiter.wait("a") == 0 and limiter.wait("a") == 0
    assert limiter.take("a") == 0 and limiter.wait("a") == pytest.approx(1)


def test_memory_is_bounded(clock):
    """Many keys keep at most ``max_keys`` buckets, dropping the least recently used."""
    limiter = RateLimiter(rate=1, burst=1, max_keys=100, clock=clock.monotonic)
    for i in range(10_000):
        limiter.take(f"address:{i}")
    assert len(limiter._buckets) == 100
    assert "address:9999" in limiter._buckets and "address:0" not in limiter._buckets


def test_retry_after_is_whole_seconds_rounded_up():
    """Retry-After is an integer, at least 1."""
    assert [retry_after(s) for s in (0.01, 1.0, 1.2)] == ["1", "1", "2"]


def test_nonsense_limits_are_refused():
    """A zero rate or burst would refuse everything and is a mistake."""
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)

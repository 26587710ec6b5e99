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

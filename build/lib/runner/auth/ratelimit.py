"""Request rate limits per principal: a token bucket each, in bounded memory.

Each key (a principal's ``caller``, or a client address for failed logins) gets a bucket of
``burst`` requests refilled at ``rate`` per second. Buckets live in an LRU of at most
``max_keys``; dropping the least recently used one only forgets a bucket that had the most
time to refill, so an attacker cycling through keys cannot grow memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """Token buckets by key: ``take`` spends one request, ``wait`` only looks."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        # key -> (tokens left, when last refilled)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str) -> tuple[float, float]:
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return tokens, now

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may make a request; 0 if it may now. Spends nothing."""
        tokens, _ = self._level(key)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str) -> float:
        """Spend one request of ``key``'s bucket: 0 if allowed, else seconds to wait."""
        tokens, now = self._level(key)
        if tokens < 1:
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))

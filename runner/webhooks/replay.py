"""Replays: a delivery id seen before is answered with the run it started, not run again.

Senders retry (GitHub redeliveries, Standard Webhooks and Slack retries keep their id)
and attackers replay. :class:`ReplayGuard` is the seam: the in-memory
:class:`MemoryReplayGuard` serves one process; a PostgreSQL one (``INSERT … ON CONFLICT
DO NOTHING RETURNING``) will serve replicas. ``claim`` is one atomic check-and-set, so two
concurrent copies of a delivery cannot both start a run.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

DAY = 24 * 3600.0


class ReplayGuard(Protocol):
    """Remembers which run each (job, scheme, delivery id) started."""

    async def claim(self, job: str, scheme: str, delivery_id: str, run_id: str) -> str | None:
        """Record that the delivery starts ``run_id``; if it was seen before (and has not
        expired), record nothing and return the run id it started then."""
        ...

    async def release(self, job: str, scheme: str, delivery_id: str) -> None:
        """Forget a claim whose run could not be created, so a retry may start it."""
        ...


class MemoryReplayGuard:
    """An in-process :class:`ReplayGuard`: entries expire after ``ttl`` seconds, and past
    ``max_entries`` the oldest are forgotten first, so memory stays bounded.

    The job is part of the key: one Standard Webhooks message id goes to every endpoint
    that subscribed, and each of those jobs must run it once. ``clock`` is injectable for
    tests; monotonic, because wall-clock steps must not expire or revive entries.
    """

    def __init__(
        self,
        *,
        ttl: float = DAY,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        # Insertion order is expiry order (one ttl for all), so expired entries are at the
        # front and the oldest is what goes first when full.
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    async def claim(self, job: str, scheme: str, delivery_id: str, run_id: str) -> str | None:
        """See :meth:`ReplayGuard.claim`. Atomic: no await between the check and the set."""
        now = self._clock()
        self._forget(now)
        key = (job, scheme, delivery_id)
        found = self._seen.get(key)
        if found is not None:
            return found[0]
        self._seen[key] = (run_id, now + self.ttl)
        self._forget(now)
        return None

    async def release(self, job: str, scheme: str, delivery_id: str) -> None:
        """See :meth:`ReplayGuard.release`."""
        self._seen.pop((job, scheme, delivery_id), None)

    def _forget(self, now: float) -> None:
        """Drop the entries expired at ``now``, then the oldest past ``max_entries``: both
        are at the front, in insertion order."""
        while self._seen:
            _, (_, expires) = next(iter(self._seen.items()))
            if expires > now and len(self._seen) <= self.max_entries:
                return
            self._seen.popitem(last=False)

"""The store interface: the seam where SQLite (one process) and PostgreSQL (replicas) plug in."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import Protocol

from runner.records import Claim, Event, Notice, RunRecord


def filter_combos(
    job: str | None, jobs: Sequence[str] | None, states: Sequence[str]
) -> list[tuple[str | None, str | None]]:
    """The (job, state) pairs a history query reads, one index range scan each (None: any);
    ``jobs`` bounds the answer (an empty list: no pair, no run)."""
    if job is not None:
        jobs = [job] if jobs is None or job in jobs else []
    job_values: list[str | None] = list(jobs) if jobs is not None else [None]
    state_values: list[str | None] = list(states) if states else [None]
    return list(itertools.product(job_values, state_values))


class Store(Protocol):
    """Durable runs and events. ``write`` is atomic: all of a batch or none of it."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> Collection[str]:
        """Upsert ``runs`` and append ``events`` in one transaction, durable on return.

        Returns the ids of runs left unwritten, with their events, because another holder
        has them now (a shared store: a peer found this replica dead and ended them) —
        fenced, never merged. A single-process store returns nothing."""
        ...

    async def get(self, run_id: str) -> RunRecord | None:
        """A run's record (without its body: see :meth:`body`)."""
        ...

    async def body(self, run_id: str) -> bytes:
        """The body a run keeps to run again after a restart (a script's $1), or b""."""
        ...

    async def list_runs(
        self,
        *,
        job: str | None = None,
        jobs: Sequence[str] | None = None,
        states: Sequence[str] = (),
        before: str | None = None,
        limit: int = 50,
        caller: str | None = None,
    ) -> list[RunRecord]:
        """Newest first; ``before`` is a run id cursor for the next page; ``jobs``, when
        given, bounds the answer to those jobs (an empty list: no run); ``caller`` to the
        runs one principal started (a sender, ``webhook:github``, matches each of its
        deliveries, ``webhook:github/<id>``). Each page costs the same at any history size."""
        ...

    async def claim(self, claim: Claim, *, ttl: float, replacing: str | None = None) -> Claim:
        """Take ``claim.key`` for ``claim.run_id`` unless a claim younger than ``ttl``
        seconds holds it (``replacing``: unless it is the one naming that run). Returns the
        claim that holds the key now: the new one, or the one found. Atomic, durable."""
        ...

    async def release(self, key: str, run_id: str) -> None:
        """Drop the claim of ``key`` if it still names ``run_id`` (its run was refused)."""
        ...

    async def events(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        """Events of one run with ``seq > after``, in order, at most ``limit``."""
        ...

    async def outbox_add(self, notices: Sequence[Notice]) -> None:
        """Add notices; one whose id is there already is left as it is (idempotent)."""
        ...

    async def outbox_take(self, now: float, lease: float, limit: int = 100) -> list[Notice]:
        """Take undelivered notices whose next try is due (given-up ones excluded): each
        taken one's next try moves to ``now + lease`` in the same step, so that no other
        sender (another replica) takes it while this one tries it. A sender that dies
        mid-try leaves it due again after the lease."""
        ...

    async def outbox_update(self, notice: Notice) -> None:
        """Record a try of a notice: attempts, next try, delivery, last status and error."""
        ...

    async def notices(self, run_id: str) -> list[Notice]:
        """Every notice of a run, delivered or not, oldest first."""
        ...

    async def prune(
        self,
        created_before: float,
        claims_before: float | None = None,
        keep_bytes: int | None = None,
    ) -> int:
        """Delete finished runs created before the time given, with their events (and
        claims taken before ``claims_before``), then the oldest finished runs while the
        store holds more than ``keep_bytes``; in small batches, giving space back."""
        ...

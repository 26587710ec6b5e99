"""Replays: a request seen before answers with the run it started, not with a second run.

One mechanism for both kinds of repeat:

- a webhook delivery redelivered (GitHub redeliveries, Slack and Standard Webhooks retries
  keep their delivery id) or replayed by an attacker: key ``delivery:<job>:<scheme>:<id>``;
- a client retrying a POST after a timeout with the same ``Idempotency-Key``
  (draft-ietf-httpapi-idempotency-key-header): key ``idempotency:<caller>:<key>``, and the
  request must be the same one (its fingerprint: job, recorded parameters, body digest).

The store keeps the claims (one atomic take per key, so two copies arriving at once, even
on two replicas, start one run), for ``ttl`` seconds, across restarts.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner import lease
from runner.errors import Conflict, ParameterError, ParameterProblem
from runner.records import Claim, RunRecord
from runner.store.base import Store

DAY = 24 * 3600.0
KEY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Key:
    """A request's replay key: what it is called in refusals, and the claim's name."""

    name: str  # what a refusal calls it ("Idempotency-Key", "delivery")
    claim: str  # the claim's key in the store
    checked: bool  # a reuse by another request is refused (idempotency keys)

    @classmethod
    def delivery(cls, job: str, scheme: str, delivery_id: str) -> Key:
        return cls("delivery", f"delivery:{job}:{scheme}:{delivery_id}", checked=False)

    @classmethod
    def delivery_body(cls, job: str, scheme: str, body: bytes) -> Key:
        """The signed body itself: some senders sign no delivery id (GitHub's
        X-GitHub-Delivery is not signed), so a captured delivery replayed under a new id is
        still the same signed body."""
        digest = hashlib.sha256(body).hexdigest()
        return cls("delivery", f"delivery-body:{job}:{scheme}:{digest}", checked=False)

    @classmethod
    def idempotency(cls, caller: str, key: str) -> Key:
        return cls(KEY_HEADER, f"idempotency:{caller}:{key}", checked=True)


def fingerprint(job: str, params: Mapping[str, Any], body: bytes) -> str:
    """A digest of the request: job, recorded parameters (secrets are redacted there, so
    a secret's value never enters a stored digest) and the body."""
    text = json.dumps([job, dict(params), hashlib.sha256(body).hexdigest()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Replays:
    """Claims request keys for runs; tells a repeat which run to answer with."""

    def __init__(
        self,
        store: Store,
        owner: str,
        live: Callable[[str], Awaitable[RunRecord | None]],
        *,
        ttl: float = DAY,
        alive: Callable[[str], bool] = lease.alive,
    ) -> None:
        self.store = store
        self.owner = owner  # the lease of this process's executor
        self.alive = alive  # whether a lease's holder still runs (anywhere: replicas)
        self.live = live  # finds a run, live or stored
        self.ttl = ttl

    async def claim(self, key: Key, request: str, run_id: str, job: str) -> RunRecord | None:
        """Take ``key`` for a run ``run_id`` of ``job``; None if it was free, else the run
        it started.

        Raises Conflict while another copy of the request is still being started, and
        ParameterError when the key was used for a different request.
        """
        mine = Claim(key.claim, run_id, request, self.owner, time.time())
        held = await self.store.claim(mine, ttl=self.ttl)
        if held.run_id == run_id:
            return None
        if key.checked and held.fingerprint != request:
            raise ParameterError(
                job,
                [ParameterProblem(key.name, "already used for a different request "
                                  "(another job, other parameters or another body)")],
            )  # fmt: skip
        original = await self.live(held.run_id)
        if original is not None:
            return original
        if self.alive(held.owner):
            raise Conflict(
                f"a request with this {key.name} is still being started "
                f"(run {held.run_id}); retry in a moment",
                retry_after=1,
            )
        # The process that claimed it died before its run was stored: the key is free.
        taken = await self.store.claim(mine, ttl=self.ttl, replacing=held.run_id)
        if taken.run_id != run_id:  # pragma: no cover - another taker won the race
            return await self.claim(key, request, run_id, job)
        return None

    async def release(self, key: Key, run_id: str) -> None:
        """Free a key whose run was refused (queue full, draining, store down)."""
        await self.store.release(key.claim, run_id)

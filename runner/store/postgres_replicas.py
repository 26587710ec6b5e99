"""What replicas share in PostgreSQL, as statements: heartbeats, the queue, lock keys,
recovery of a dead replica's runs, cancels asked on one replica for a run on another.

Every decision two replicas could both make is one statement or one transaction on rows
that the database locks, so it is made once:

- a claim takes queued runs ``FOR UPDATE SKIP LOCKED`` and their lock keys as unique rows
  (``locks``), fenced by the run's ``attempt``; the run's final write frees its key;
- a replica whose heartbeat is older than the lease timeout is taken ``FOR UPDATE SKIP
  LOCKED`` by the first peer to notice: its running runs become ``interrupted`` with a
  ``done`` event numbered after their last, and its row goes, in one statement;
- times of heartbeats are the database's clock, never a replica's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from runner.errors import StoreError
from runner.records import RunRecord
from runner.store.postgres import EVENTS_CHANNEL, QUEUE_CHANNEL, PostgresStore, _record
from runner.store.postgres_schema import RUN_COLUMNS

CANCEL_CHANNEL = "runner_cancel"  # payload: a run id whose cancel was asked
_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

# Interrupt the running runs (and queued ones with secrets: nobody else can run them) of
# the given holders; their lock keys freed, their own rows gone; one done event each.
_INTERRUPT = f"""
WITH r AS (
    UPDATE runs SET state = 'interrupted', finished = $2, owner = $3,
        last_event = last_event + 1, attempt = attempt + 1,
        reason = CASE WHEN state = 'running' THEN $4 ELSE $5 END
            || ' (replica ' || owner || ')'
    WHERE owner = ANY($1::text[]) AND (state = 'running' OR (state = 'queued' AND had_secrets))
    RETURNING key, id, last_event, started, reason
), e AS (
    INSERT INTO events (run, seq, kind, data, ts)
    SELECT key, last_event, 4, json_build_object('state', 'interrupted', 'exit_code', NULL,
        'duration', CASE WHEN started IS NULL THEN NULL
                         ELSE round(($2 - started)::numeric, 6)::float8 END,
        'reason', reason)::text, $2
    FROM r
), q AS (
    UPDATE runs SET owner = '' WHERE owner = ANY($1::text[]) AND state = 'queued'
        AND NOT had_secrets RETURNING 1
), l AS (
    DELETE FROM locks USING r WHERE locks.run_id = r.id
), d AS (
    DELETE FROM replicas WHERE owner = ANY($1::text[])
)
SELECT (SELECT count(*) FROM r) AS interrupted, (SELECT count(*) FROM q) AS requeued,
       pg_notify('{EVENTS_CHANNEL}',
                 coalesce((SELECT string_agg(id || ':' || last_event, ' ') FROM r), '')),
       pg_notify('{QUEUE_CHANNEL}', '')
"""

_CANCEL_QUEUED = f"""
WITH r AS (
    UPDATE runs SET state = 'cancelled', finished = $3, exit_code = 130, reason = $2,
        owner = $4, last_event = last_event + 1, attempt = attempt + 1
    WHERE id = $1 AND state = 'queued' AND owner IN ('', $4)
    RETURNING key, id, last_event
), e AS (
    INSERT INTO events (run, seq, kind, data, ts)
    SELECT key, last_event, 4, json_build_object('state', 'cancelled', 'exit_code', 130,
        'duration', NULL, 'reason', $2)::text, $3
    FROM r
)
SELECT id, pg_notify('{EVENTS_CHANNEL}', id || ':' || last_event) FROM r
"""


class Board:
    """The replicas' shared state for one executor (``owner``)."""

    def __init__(self, store: PostgresStore, owner: str, lease_timeout: float) -> None:
        self.store = store
        self.owner = owner
        self.lease_timeout = lease_timeout

    def _error(self, exc: BaseException) -> StoreError:
        return self.store._error("coordinate replicas through", exc)

    async def heartbeat(self, *, draining: bool = False) -> set[str]:
        """Say this replica is alive; the replicas alive now (their heartbeats fresh)."""
        try:
            async with self.store.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO replicas (owner, draining) VALUES ($1, $2) ON CONFLICT "
                    "(owner) DO UPDATE SET seen = now(), draining = excluded.draining",
                    self.owner, draining,
                )  # fmt: skip
                rows = await conn.fetch(
                    "SELECT owner FROM replicas WHERE seen >= now() - make_interval(secs => $1)",
                    self.lease_timeout,
                )
        except _ERRORS as exc:
            raise self._error(exc) from exc
        return {r[0] for r in rows} | {self.owner}

    async def sweep(self, gone: Callable[[str], bool] | None = None) -> list[str]:
        """Interrupt the runs of replicas gone silent (and of holders with no heartbeat
        row at all), each by exactly one peer; ``gone`` also names holders known dead
        without waiting (a predecessor on this host whose process is gone). Returns the
        holders recovered."""
        try:
            async with self.store.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT owner FROM replicas WHERE owner <> $1 AND "
                    "seen < now() - make_interval(secs => $2) FOR UPDATE SKIP LOCKED",
                    self.owner, self.lease_timeout,
                )  # fmt: skip
                dead = [r[0] for r in rows]
                # Holders with live runs and no heartbeat row (a store made by SQLite's
                # migration, a process that died before its first beat, or a replica
                # whose row a peer already removed).
                orphans = await conn.fetch(
                    "SELECT DISTINCT owner FROM runs WHERE state IN ('queued', 'running') "
                    "AND owner NOT IN ('', $1) AND NOT EXISTS "
                    "(SELECT 1 FROM replicas p WHERE p.owner = runs.owner)",
                    self.owner,
                )
                dead += [r[0] for r in orphans]
                if gone is not None:
                    known = await conn.fetch(
                        "SELECT owner FROM replicas WHERE owner <> $1 FOR UPDATE SKIP LOCKED",
                        self.owner,
                    )
                    dead += [r[0] for r in known if gone(r[0]) and r[0] not in dead]
                if not dead:
                    return []
                await self.interrupt(conn, dead, "the replica stopped answering while this "
                                     f"run was running (no heartbeat for "
                                     f"{self.lease_timeout:g} s)")  # fmt: skip
        except _ERRORS as exc:
            raise self._error(exc) from exc
        return dead

    async def interrupt(self, conn: Any, owners: Sequence[str], why: str) -> None:
        await conn.fetchrow(
            _INTERRUPT, list(owners), time.time(), self.owner, why,
            "secrets are never stored, so only the replica that took it could run it; "
            "start it again",
        )  # fmt: skip

    async def leave(self) -> None:
        """This replica stops: its queued runs go back to the shared queue (those with
        secrets are interrupted: only it had them), its row goes."""
        try:
            async with self.store.pool.acquire() as conn:
                await self.interrupt(conn, [self.owner], "the replica stopped")
        except _ERRORS as exc:
            raise self._error(exc) from exc

    async def claim(
        self, limit: int, mine: Sequence[str] = (), *, others: bool = True
    ) -> list[RunRecord]:
        """Up to ``limit`` queued runs for this replica, oldest first: unowned ones (the
        shared queue) and ``mine`` (queued here holding secrets, that only this replica
        can run), skipping runs another replica is claiming and runs whose lock key is
        held anywhere. A run queued with an owner is that owner's to start, never taken.
        ``others``: False for a process that runs only its own (``runner run``)."""
        picked: list[RunRecord] = []
        try:
            async with self.store.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    f"SELECT {RUN_COLUMNS}, attempt FROM runs WHERE state = 'queued' "
                    "AND ((owner = '' AND $4) OR (owner = $1 AND id = ANY($3::text[]))) "
                    "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    self.owner, limit * 4 + 8, list(mine), others,
                )  # fmt: skip
                for row in rows:
                    if len(picked) >= limit:
                        break
                    if row["lock_key"] is not None:
                        got = await conn.fetchval(
                            "INSERT INTO locks (key, run_id, attempt) VALUES ($1, $2, $3) "
                            "ON CONFLICT (key) DO NOTHING RETURNING 1",
                            row["lock_key"], row["id"], row["attempt"] + 1,
                        )  # fmt: skip
                        if got is None:
                            continue
                    picked.append(_record(row))
                if picked:
                    await conn.execute(
                        "UPDATE runs SET owner = $1, attempt = attempt + 1 "
                        "WHERE id = ANY($2::text[])",
                        self.owner, [r.id for r in picked],
                    )  # fmt: skip
        except _ERRORS as exc:
            raise self._error(exc) from exc
        for run in picked:
            run.owner = self.owner
        return picked

    async def cancel_queued(self, run_id: str, reason: str) -> bool:
        """Cancel a run still waiting in the shared queue (or held queued by this
        replica), unless a replica claims it first. True if it was cancelled here."""
        try:
            row = await self.store.pool.fetchrow(
                _CANCEL_QUEUED, run_id, reason, time.time(), self.owner
            )
        except _ERRORS as exc:
            raise self._error(exc) from exc
        return row is not None

    async def ask_cancel(self, run_id: str, reason: str) -> bool:
        """Ask the replica holding a run to cancel it (a row, then a doorbell); False if
        the run is not queued or running any more."""
        try:
            row = await self.store.pool.fetchrow(
                "WITH r AS (UPDATE runs SET cancel = $2 WHERE id = $1 AND state IN "
                "('queued', 'running') RETURNING id) "
                f"SELECT id, pg_notify('{CANCEL_CHANNEL}', id) FROM r",
                run_id, reason,
            )  # fmt: skip
        except _ERRORS as exc:
            raise self._error(exc) from exc
        return row is not None

    async def cancels(self) -> list[tuple[str, str]]:
        """Cancels asked of this replica's runs (a missed doorbell is found here)."""
        try:
            rows = await self.store.pool.fetch(
                "SELECT id, cancel FROM runs WHERE owner = $1 AND state IN ('queued', "
                "'running') AND cancel IS NOT NULL",
                self.owner,
            )
        except _ERRORS as exc:
            raise self._error(exc) from exc
        return [(r[0], r[1]) for r in rows]

    async def claimed_elsewhere(self, run_ids: Sequence[str]) -> set[str]:
        """Which of these runs (queued from here) left the shared queue meanwhile."""
        try:
            rows = await self.store.pool.fetch(
                "SELECT id FROM runs WHERE id = ANY($1::text[]) AND state = 'queued' "
                "AND owner IN ('', $2)",
                list(run_ids), self.owner,
            )  # fmt: skip
        except _ERRORS as exc:
            raise self._error(exc) from exc
        return set(run_ids) - {r[0] for r in rows}

"""PostgreSQL store: one database shared by every replica (schema: ``postgres_schema``).

The driver is asyncpg (measured against psycopg 3 with its pool on this machine's two
cores, c=8, one upsert and three events per transaction: 2,317 against 1,930 commits/s,
and 0.20 against 0.23 ms of client CPU each — the cores are shared with the server and
PostgreSQL), with its own pool. A password may be a callable: ``store_auth = "azure"``
passes one that asks the runner's credential for an Entra token at every new connection.

A batch of the journal is one statement (data-modifying CTEs: the runs upserted, their
events inserted, the lock keys of ended runs freed, and a NOTIFY for followers on other
replicas when the batch holds a run one of them watches), so it costs one round trip and
is atomic. Only watched runs ring: a doorbell that every replica must read and drop costs
more than the write (measured: with ``--workers 2``, a NOTIFY for every batch took a
quarter of the runner's CPU per run). A run's row is updated only by the
executor holding it (``owner``): a write for a run another replica took (it found this
one dead) changes nothing of it, and is reported (fenced), never merged.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import asyncpg

from runner.errors import StoreError
from runner.records import FINAL, QUEUED, Claim, Event, Notice, RunRecord, Trigger
from runner.settings.sections import redacted
from runner.store.base import filter_combos
from runner.store.postgres_schema import (
    KIND_CODES,
    KIND_NAMES,
    MIGRATE_LOCK,
    MIGRATIONS,
    RUN_COLUMNS,
    VERSION,
)

PRUNE_BATCH = 200
# Replay pages read at once. Ten long replays reading together keep ten PostgreSQL backends
# and the server's loop busy at once on a host's few cores, and every other request waits
# (measured on two cores: /_health p99 74 ms with ten 10M-line readers); served in turn,
# waiters in order, they share fairly and leave the pool to writes, claims and lists.
READ_SLOTS = 2
_PARAM = re.compile(r"\$(\d+)")  # a statement's parameter ($1, $2…), renumbered in a union


EVENTS_CHANNEL = "runner_events"  # payload: "<run id>:<last seq> …" of a committed batch
QUEUE_CHANNEL = "runner_queue"  # a run became claimable (queued, or a lock key freed)
NOTIFY_MAX = 7900  # PostgreSQL's payload limit is 8000 bytes; past it: "*", wake all
_FINAL = sorted(FINAL)
_NOTICE = (
    "id, run_id, channel, target, body, created, deadline, next_at, attempts, delivered, "
    "last_status, last_error"
)

Password = Callable[[], Awaitable[str]]

_WRITE = f"""
WITH r AS (
    INSERT INTO runs ({RUN_COLUMNS}, body)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::float8[], $7::float8[], $8::text[], $9::float8[], $10::float8[], $11::int[],
        $12::text[], $13::int[], $14::bool[], $15::text[], $16::text[], $17::bytea[])
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, started = excluded.started,
        finished = excluded.finished, exit_code = excluded.exit_code,
        reason = excluded.reason, last_event = excluded.last_event,
        lock_key = excluded.lock_key
    WHERE runs.owner = excluded.owner
    RETURNING id, key, watched
), e AS (
    INSERT INTO events (run, seq, kind, data, ts)
    SELECT r.key, x.seq, x.kind, x.data, x.ts
    FROM unnest($18::text[], $19::int[], $20::int2[], $21::text[], $22::float8[])
        AS x (run_id, seq, kind, data, ts)
    JOIN r ON r.id = x.run_id
    RETURNING 1
), l AS (
    DELETE FROM locks USING r WHERE locks.run_id = r.id AND r.id = ANY($23::text[])
    RETURNING 1
), bell AS (
    SELECT string_agg(d.id || ':' || d.seq, ' ') AS payload
    FROM unnest($24::text[], $26::int[]) AS d (id, seq) JOIN r ON r.id = d.id
    WHERE r.watched
)
SELECT (SELECT array_agg(id) FROM r) AS written,
       (SELECT count(*) FROM e) AS events, (SELECT count(*) FROM l) AS freed,
       (SELECT CASE WHEN payload IS NOT NULL THEN pg_notify('{EVENTS_CHANNEL}',
            CASE WHEN length(payload) > {NOTIFY_MAX} THEN '*' ELSE payload END) END
        FROM bell),
       CASE WHEN $25::bool THEN pg_notify('{QUEUE_CHANNEL}', '') END
"""


def _shifted(sql: str, by: int) -> str:
    """``sql`` with its parameters numbered from ``by + 1`` (values are never in the text)."""
    return _PARAM.sub(lambda m: f"${int(m[1]) + by}", sql)


def _record(row: Any) -> RunRecord:
    return RunRecord(
        id=row[0], job=row[1], state=row[2], params=json.loads(row[3]), caller=row[4],
        created=row[5], timeout=row[6], lock_key=row[7], started=row[8], finished=row[9],
        exit_code=row[10], reason=row[11], last_event=row[12], had_secrets=row[13],
        owner=row[14], trigger=Trigger.loaded(row[15]),
    )  # fmt: skip


def _columns(runs: Sequence[RunRecord]) -> list[list[Any]]:
    """The runs as the 17 column arrays of ``_WRITE``."""
    rows = []
    for run in runs:
        if not run.params_json:
            run.params_json = json.dumps(run.params)
            run.trigger_json = run.trigger.stored()
        rows.append((
            run.id, run.job, run.state, run.params_json, run.caller, run.created, run.timeout,
            run.lock_key, run.started, run.finished, run.exit_code, run.reason,
            run.last_event, run.had_secrets, run.owner, run.trigger_json, run.body or None,
        ))  # fmt: skip
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 17


def doorbell(events: Sequence[Event]) -> tuple[list[str], list[int]]:
    """What the NOTIFY of a batch may say: each run's id and its last event number (the
    statement keeps the runs followed from another replica)."""
    last: dict[str, int] = {}
    for event in events:
        last[event.run_id] = event.seq
    return list(last), list(last.values())


class PostgresStore:
    """The shared store. ``url``: ``postgresql://user[:password]@host/db?…``."""

    def __init__(
        self,
        url: str,
        *,
        password: Password | None = None,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self._password = password
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # The journal's batches go through a connection of their own while it is free
        # (one writer at a time): no pool acquire and release per batch (measured: a
        # twentieth of the runner's CPU under load); concurrent writers use the pool.
        self._writer: Any = None
        self._writing = False
        self._read_slot: asyncio.Semaphore | None = None  # made on the loop, at first use

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"cannot {what} the run store {redacted(self.url)}: {exc}")

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own (the replicas' listener), outside the pool."""
        try:
            conn: asyncpg.Connection = await asyncpg.connect(self.url, **self._auth())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("connect to", exc) from exc
        return conn

    def _auth(self) -> dict[str, Any]:
        return {"password": self._password} if self._password is not None else {}

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                # Connections outlive an Entra token (the server checks it at login only);
                # an idle one is closed after a while all the same.
                max_inactive_connection_lifetime=300,
                # asyncpg resets a connection (a round trip) each time it goes back to the
                # pool; these connections keep no session state (no SET, LISTEN or
                # session locks: the listener has a connection of its own), so none is.
                reset=_keep,
                **self._auth(),
            )
            async with self.pool.acquire() as conn:
                await migrate(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise self._error("open", exc) from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            writer, self._writer = self._writer, None
            if writer is not None:
                await pool.release(writer)
            await pool.close()

    # -- writing -------------------------------------------------------------------------

    async def write(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> Collection[str]:
        """One statement: returns the runs not written because another holder has them."""
        if not runs:
            if events:
                raise StoreError("events without their run's record")
            return ()
        final = [r.id for r in runs if r.state in FINAL]
        bell = any(
            (r.state == QUEUED and not r.owner) or (r.state in FINAL and r.lock_key) for r in runs
        )
        bell_ids, bell_seqs = doorbell(events)
        args = [
            *_columns(runs),
            [e.run_id for e in events], [e.seq for e in events],
            [KIND_CODES[e.kind] for e in events], [e.data for e in events],
            [e.ts for e in events], final, bell_ids, bell, bell_seqs,
        ]  # fmt: skip
        try:
            row: Any = await self._write(args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("write to", exc) from exc
        written = set(row["written"] or ())
        fenced = [r.id for r in runs if r.id not in written]
        if not fenced and row["events"] != len(events):
            raise StoreError("events without their run's record")
        return fenced

    async def _write(self, args: list[Any]) -> Any:
        if self._writing:
            return await self.pool.fetchrow(_WRITE, *args)
        self._writing = True
        try:
            if self._writer is None:
                self._writer = await self.pool.acquire()
            try:
                return await self._writer.fetchrow(_WRITE, *args)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                # A broken connection goes back (the pool replaces it); the next takes another.
                writer, self._writer = self._writer, None
                await self.pool.release(writer)
                raise
        finally:
            self._writing = False

    # -- reading -------------------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord | None:
        row = await self._fetchrow(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = $1", run_id)
        return None if row is None else _record(row)

    async def body(self, run_id: str) -> bytes:
        row = await self._fetchrow("SELECT body FROM runs WHERE id = $1", run_id)
        return bytes(row[0]) if row is not None and row[0] is not None else b""

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
        """One index range scan per combination of the equality filters (as SQLite's),
        merged newest first by the database in the same statement: one round trip."""
        combos = filter_combos(job, jobs, states)
        if not combos:
            return []
        sql, args = self.list_query(combos, caller, before, limit)
        return [_record(r) for r in await self._fetch(sql, *args)]

    @classmethod
    def list_query(
        cls,
        combos: Sequence[tuple[str | None, str | None]],
        caller: str | None,
        before: str | None,
        limit: int,
    ) -> tuple[str, list[object]]:
        """The pages of several (job, state) combinations as one statement: each an
        ordered index range scan with its own LIMIT, joined by a Merge Append (public for
        the query-plan test). Four states at 1M runs: one round trip instead of four."""
        if len(combos) == 1:
            ((job, state),) = combos
            return cls.page_query(job, state, caller, before, limit)
        parts: list[str] = []
        args: list[object] = []
        for job, state in combos:
            sql, more = cls.page_query(job, state, caller, before, limit)
            parts.append(f"({_shifted(sql, len(args))})")
            args += more
        args.append(limit)
        return " UNION ALL ".join(parts) + f" ORDER BY id DESC LIMIT ${len(args)}", args

    @staticmethod
    def page_query(
        job: str | None, state: str | None, caller: str | None, before: str | None, limit: int
    ) -> tuple[str, list[object]]:
        """The SQL of one page of the history (public for the query-plan test)."""
        where: list[str] = []
        args: list[object] = []

        def add(clause: str, value: object) -> None:
            args.append(value)
            where.append(clause.replace("?", f"${len(args)}"))

        if job is not None:
            add("job = ?", job)
        if state is not None:
            add("state = ?", state)
        if caller is not None:
            sender, _, delivery = caller.partition("/")
            add("sender = ?", sender)
            if delivery:
                add("caller = ?", caller)
        if before is not None:
            add("id < ?", before)
        sql = f"SELECT {RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        args.append(limit)
        return sql + f" ORDER BY id DESC LIMIT ${len(args)}", args

    async def watch(self, run_id: str) -> None:
        """A replica follows this run from afar: from now on its batches ring."""
        await self._execute("UPDATE runs SET watched = true WHERE id = $1 AND NOT watched", run_id)

    async def events(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        if self._read_slot is None:
            self._read_slot = asyncio.Semaphore(READ_SLOTS)
        async with self._read_slot:
            rows = await self._fetch(
                "SELECT seq, kind, data, ts FROM events WHERE run = "
                "(SELECT key FROM runs WHERE id = $1) AND seq > $2 ORDER BY seq LIMIT $3",
                run_id, after, limit,
            )  # fmt: skip
        return [Event(run_id, seq, KIND_NAMES[kind], data, ts) for seq, kind, data, ts in rows]

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        try:
            return list(await self.pool.fetch(sql, *args))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("read from", exc) from exc

    async def _fetchrow(self, sql: str, *args: object) -> Any:
        try:
            return await self.pool.fetchrow(sql, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("read from", exc) from exc

    async def _execute(self, sql: str, *args: object) -> str:
        try:
            return str(await self.pool.execute(sql, *args))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("write to", exc) from exc

    # -- claims --------------------------------------------------------------------------

    async def claim(self, claim: Claim, *, ttl: float, replacing: str | None = None) -> Claim:
        """One unique row per key: an upsert that replaces only an expired claim (or the
        one named), else locks the holder's row so that it can be read back as it is."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "INSERT INTO claims AS c (key, run_id, fingerprint, owner, created) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET "
                    "run_id = excluded.run_id, fingerprint = excluded.fingerprint, "
                    "owner = excluded.owner, created = excluded.created "
                    "WHERE c.created < excluded.created - $6 OR c.run_id = $7 "
                    "RETURNING key, run_id, fingerprint, owner, created",
                    claim.key, claim.run_id, claim.fingerprint, claim.owner, claim.created,
                    ttl, replacing,
                )  # fmt: skip
                if row is None:
                    row = await conn.fetchrow(
                        "SELECT key, run_id, fingerprint, owner, created FROM claims "
                        "WHERE key = $1",
                        claim.key,
                    )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("write to", exc) from exc
        if row is None:  # released between the two statements: take it again
            return await self.claim(claim, ttl=ttl, replacing=replacing)
        return Claim(*row)

    async def release(self, key: str, run_id: str) -> None:
        await self._execute("DELETE FROM claims WHERE key = $1 AND run_id = $2", key, run_id)

    # -- outbox --------------------------------------------------------------------------

    async def outbox_add(self, notices: Sequence[Notice]) -> None:
        rows = [
            (n.id, n.run_id, n.channel, n.target, n.body, n.created, n.deadline, n.next_at,
             n.attempts, n.delivered, n.last_status, n.last_error)
            for n in notices
        ]  # fmt: skip
        try:
            await self.pool.executemany(
                f"INSERT INTO outbox ({_NOTICE}) VALUES "
                "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (id) DO NOTHING",
                rows,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("write to", exc) from exc

    async def outbox_take(self, now: float, lease: float, limit: int = 100) -> list[Notice]:
        """Due notices, each leased in the same statement; rows another sender is taking
        at this moment are skipped (SKIP LOCKED), so no notice goes to two senders."""
        rows = await self._fetch(
            f"WITH due AS (SELECT {_NOTICE} FROM outbox WHERE delivered IS NULL "
            "AND next_at <= $1 AND next_at <= deadline ORDER BY next_at, id LIMIT $3 "
            "FOR UPDATE SKIP LOCKED), "
            "leased AS (UPDATE outbox o SET next_at = $2 FROM due WHERE o.id = due.id) "
            "SELECT * FROM due ORDER BY next_at, id",
            now, now + lease, limit,
        )  # fmt: skip
        return [Notice(*row) for row in rows]

    async def outbox_update(self, notice: Notice) -> None:
        await self._execute(
            "UPDATE outbox SET attempts = $1, next_at = $2, delivered = $3, last_status = $4, "
            "last_error = $5 WHERE id = $6",
            notice.attempts, notice.next_at, notice.delivered, notice.last_status,
            notice.last_error, notice.id,
        )  # fmt: skip

    async def notices(self, run_id: str) -> list[Notice]:
        rows = await self._fetch(
            f"SELECT {_NOTICE} FROM outbox WHERE run_id = $1 ORDER BY created, id", run_id
        )
        return [Notice(*row) for row in rows]

    # -- pruning -------------------------------------------------------------------------

    async def prune(
        self,
        created_before: float,
        claims_before: float | None = None,
        keep_bytes: int | None = None,
    ) -> int:
        """Finished runs older than ``created_before`` by id (ULIDs sort by time), in
        batches of index range scans with a yield between; then the oldest finished while
        the live data is over ``keep_bytes``. Autovacuum gives the space back."""
        from runner.store.sqlite import id_before

        removed = 0
        cutoff = id_before(created_before)
        while batch := await self._oldest(cutoff, PRUNE_BATCH):
            removed += await self._delete(batch)
            await asyncio.sleep(0)
        while keep_bytes is not None and (await self.size())["live"] > keep_bytes:
            batch = await self._oldest(None, PRUNE_BATCH // 4)
            if not batch:
                break
            removed += await self._delete(batch)
            await asyncio.sleep(0)
        if claims_before is not None:
            await self._execute("DELETE FROM claims WHERE created < $1", claims_before)
        return removed

    async def _oldest(self, cutoff: str | None, count: int) -> list[tuple[int, str]]:
        """The ``count`` oldest finished runs: one range scan of (state, id) per state."""
        below = " AND id < $2" if cutoff is not None else ""
        found: list[tuple[int, str]] = []
        for state in _FINAL:
            args: list[object] = [state]
            if cutoff is not None:
                args.append(cutoff)
            rows = await self._fetch(
                f"SELECT key, id FROM runs WHERE state = $1{below} ORDER BY id LIMIT {int(count)}",
                *args,
            )
            found.extend((r[0], r[1]) for r in rows)
        return sorted(found, key=lambda kv: kv[1])[:count]

    async def _delete(self, batch: list[tuple[int, str]]) -> int:
        keys, ids = [k for k, _ in batch], [i for _, i in batch]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM events WHERE run = ANY($1::bigint[])", keys)
                await conn.execute("DELETE FROM outbox WHERE run_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM runs WHERE key = ANY($1::bigint[])", keys)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._error("prune", exc) from exc
        return len(batch)

    async def size(self) -> dict[str, int]:
        """Bytes the runner's tables take (with indexes and TOAST): ``live``."""
        row: Any = await self._fetchrow(
            "SELECT sum(pg_total_relation_size(t::regclass))::bigint FROM "
            "unnest(ARRAY['runs', 'events', 'outbox', 'claims']) AS t"
        )
        return {"live": int(row[0] or 0)}


async def _keep(conn: Any) -> None:
    """A pool connection back as it is (see ``open``)."""


async def migrate(conn: Any) -> int:
    """Bring the schema to :data:`VERSION` under an advisory lock (replicas starting at
    once wait for the first; each step runs once). Returns the version found."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS runner_schema (version integer NOT NULL)")
        found = await conn.fetchval("SELECT version FROM runner_schema")
        if found is None:
            await conn.execute("INSERT INTO runner_schema (version) VALUES (0)")
            found = 0
        if found > VERSION:
            raise StoreError(
                f"the database's schema is version {found}, newer than this runner's "
                f"({VERSION}): upgrade this runner to the version the other replicas run"
            )
        for step in MIGRATIONS[found:]:
            await conn.execute(step)
        await conn.execute("UPDATE runner_schema SET version = $1", VERSION)
    return int(found)

"""SQLite store: one file in the state directory, WAL mode (schema: ``sqlite_schema``).

Writes run on the event loop thread on purpose. With WAL and ``synchronous=NORMAL`` a
commit is a ``write()`` into the WAL without fsync — tens of microseconds, less than
handing the work to a thread — and it survives a crash of the process (``kill -9``); only
a power loss can take the last transactions. Reading a run's events — a replay may be
millions of lines — happens in worker threads on connections of their own, a page at a
time, so that a long replay never holds the loop. Other processes (``runner runs``,
``runner logs``) read the same file concurrently, as WAL allows.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import sqlite3
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from ulid import ULID

from runner.errors import StoreError
from runner.records import FINAL, Claim, Event, Notice, RunRecord, Trigger
from runner.store.base import filter_combos
from runner.store.sqlite_schema import KIND_CODES, KIND_NAMES, RUN_COLUMNS, SENDER, prepare

BUSY_MS = 20  # the longest a call on the loop waits for another process's write lock
READ_THREADS = 1  # worker threads reading replay pages at once
PRUNE_BATCH = 200  # runs deleted per transaction when pruning, with a yield between

# The body is written with the first insert and never again (nor read with the record).
_UPSERT = (
    f"INSERT INTO runs ({RUN_COLUMNS}, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(id) DO UPDATE SET state=excluded.state, started=excluded.started, "
    "finished=excluded.finished, exit_code=excluded.exit_code, reason=excluded.reason, "
    "last_event=excluded.last_event, lock_key=excluded.lock_key, owner=excluded.owner"
)
_FINAL = tuple(sorted(FINAL))
_NOTICE = (
    "id, run_id, channel, target, body, created, deadline, next_at, attempts, delivered, "
    "last_status, last_error, tries"
)


def _notice_row(n: Notice) -> tuple[object, ...]:
    return (n.id, n.run_id, n.channel, n.target, n.body, n.created, n.deadline, n.next_at,
            n.attempts, n.delivered, n.last_status, n.last_error, n.tries)  # fmt: skip


def _row(run: RunRecord) -> tuple[object, ...]:
    if not run.params_json:
        run.params_json = json.dumps(run.params)
        run.trigger_json = run.trigger.stored()
    return (
        run.id, run.job, run.state, run.params_json, run.caller, run.created, run.timeout,
        run.lock_key, run.started, run.finished, run.exit_code, run.reason, run.last_event,
        int(run.had_secrets), run.owner, run.trigger_json, run.body or None,
    )  # fmt: skip


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row[0], job=row[1], state=row[2], params=json.loads(row[3]), caller=row[4],
        created=row[5], timeout=row[6], lock_key=row[7], started=row[8], finished=row[9],
        exit_code=row[10], reason=row[11], last_event=row[12], had_secrets=bool(row[13]),
        owner=row[14], trigger=Trigger.loaded(row[15]),
    )  # fmt: skip


def id_before(when: float) -> str:
    """The smallest run id of the millisecond ``when``: ids below it are older runs."""
    return str(ULID.from_timestamp(when))[:10] + "0" * 16


class SQLiteStore:
    """The embedded store. ``path`` is created with its folder if missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._keys: dict[str, int] = {}  # run id → its integer key, for runs written here
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._read_slot: asyncio.Semaphore | None = None  # made on the loop, at first use

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # At start, wait for another process holding the file; afterwards not: the
            # connection is used on the event loop, where a wait would stall every request.
            # A busy write fails at once and the journal retries it with backoff.
            db.execute("PRAGMA busy_timeout=5000")
            prepare(db)
            db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the run store {self.path}: {exc}") from exc
        self.path.chmod(0o600)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._local = threading.local()

    # -- writing -------------------------------------------------------------------------

    async def write(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> Collection[str]:
        self.write_now(runs, events)
        return ()

    def write_now(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> None:
        """:meth:`write`, done at once: the journal relieves a job that writes faster
        than the loop turns (it never awaits) by committing inline."""
        db = self.db
        try:
            db.execute("BEGIN")
            if runs:
                db.executemany(_UPSERT, [_row(r) for r in runs])
            if events:
                db.executemany(
                    "INSERT INTO events (run, seq, kind, data, ts) VALUES (?,?,?,?,?)",
                    [(self._key(e.run_id), e.seq, KIND_CODES[e.kind], e.data, e.ts)
                     for e in events],
                )  # fmt: skip
            db.execute("COMMIT")
        except (sqlite3.Error, KeyError) as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot write to the run store {self.path}: {exc}") from exc
        for run in runs:
            if run.state in FINAL:
                self._keys.pop(run.id, None)  # no more events: no more lookups

    def _key(self, run_id: str) -> int:
        key = self._keys.get(run_id)
        if key is None:
            row = self.db.execute("SELECT key FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id} for its events")
            key = self._keys[run_id] = int(row[0])
        return key

    # -- reading -------------------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord | None:
        row = self.db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _record(row)

    async def body(self, run_id: str) -> bytes:
        row = self.db.execute("SELECT body FROM runs WHERE id = ?", (run_id,)).fetchone()
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
        """Each combination of the equality filters is one index range scan (job, state,
        job+state or caller with id), newest first and at most ``limit`` long; the pages
        are merged. No filter grows with the history: see tests/store's plan test."""
        combos = filter_combos(job, jobs, states)
        pages = [self._page(j, s, caller, before, limit) for j, s in combos]
        newest = heapq.merge(*pages, key=lambda r: r.id, reverse=True)
        return list(itertools.islice(newest, limit))

    def _page(
        self, job: str | None, state: str | None, caller: str | None, before: str | None, limit: int
    ) -> list[RunRecord]:
        sql, args = self.page_query(job, state, caller, before, limit)
        return [_record(r) for r in self.db.execute(sql, args)]

    @staticmethod
    def page_query(
        job: str | None, state: str | None, caller: str | None, before: str | None, limit: int
    ) -> tuple[str, list[object]]:
        """The SQL of one page of the history (public for the query-plan test)."""
        where: list[str] = []
        args: list[object] = []
        for column, value in (("job", job), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if caller is not None:
            # A sender (``webhook:github``) or one caller exactly (``webhook:github/<id>``):
            # both scan the sender index.
            sender, _, delivery = caller.partition("/")
            where.append(f"{SENDER} = ?")
            args.append(sender)
            if delivery:
                where.append("caller = ?")
                args.append(caller)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        sql = f"SELECT {RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        args.append(limit)
        return sql + " ORDER BY id DESC LIMIT ?", args

    async def events(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        # Pages are read in a worker thread, one at a time: reading a page is Python work
        # that holds the GIL, and ten threads holding it in turn would starve the loop
        # (every other request) as surely as reading on it. Waiters are served in order,
        # so long replays share fairly.
        if self._read_slot is None:
            self._read_slot = asyncio.Semaphore(READ_THREADS)
        async with self._read_slot:
            return await asyncio.to_thread(self._events, run_id, after, limit)

    def _events(self, run_id: str, after: int, limit: int) -> list[Event]:
        rows = self._reader().execute(
            "SELECT seq, kind, data, ts FROM events WHERE run = "
            "(SELECT key FROM runs WHERE id = ?) AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after, limit),
        )
        return [Event(run_id, seq, KIND_NAMES[kind], data, ts) for seq, kind, data, ts in rows]

    def _reader(self) -> sqlite3.Connection:
        """This worker thread's own read connection (opened on first use)."""
        reader: sqlite3.Connection | None = getattr(self._local, "db", None)
        if reader is None:
            reader = sqlite3.connect(self.path, check_same_thread=False)
            reader.execute("PRAGMA query_only=1")
            self._local.db = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    # -- claims --------------------------------------------------------------------------

    async def claim(self, claim: Claim, *, ttl: float, replacing: str | None = None) -> Claim:
        db = self.db
        try:
            # One transaction on the loop thread: no other claim can come between the
            # look and the write.
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT key, run_id, fingerprint, owner, created FROM claims WHERE key = ?",
                (claim.key,),
            ).fetchone()
            held = Claim(*row) if row is not None else None
            if held is None or held.created < claim.created - ttl or held.run_id == replacing:
                db.execute(
                    "INSERT OR REPLACE INTO claims (key, run_id, fingerprint, owner, created) "
                    "VALUES (?,?,?,?,?)",
                    (claim.key, claim.run_id, claim.fingerprint, claim.owner, claim.created),
                )
                held = claim
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot write to the run store {self.path}: {exc}") from exc
        return held

    async def release(self, key: str, run_id: str) -> None:
        try:
            self.db.execute("DELETE FROM claims WHERE key = ? AND run_id = ?", (key, run_id))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to the run store {self.path}: {exc}") from exc

    # -- outbox --------------------------------------------------------------------------

    async def outbox_add(self, notices: Sequence[Notice]) -> None:
        db = self.db
        try:
            db.execute("BEGIN")
            db.executemany(
                f"INSERT OR IGNORE INTO outbox ({_NOTICE}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [_notice_row(n) for n in notices],
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot write to the run store {self.path}: {exc}") from exc

    async def outbox_take(self, now: float, lease: float, limit: int = 100) -> list[Notice]:
        db = self.db
        due = (
            f"SELECT {_NOTICE} FROM outbox WHERE delivered IS NULL AND next_at <= ? "
            "AND next_at <= deadline ORDER BY next_at LIMIT ?"
        )
        # Senders poll: a look without the write lock first, which is most often all.
        if not db.execute(due, (now, 1)).fetchall():
            return []
        try:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute(due, (now, limit)).fetchall()
            db.executemany(
                "UPDATE outbox SET next_at = ? WHERE id = ?", [(now + lease, r[0]) for r in rows]
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot take notices from the run store {self.path}: {exc}") from exc
        # The caller gets them as they were (their due time), not as leased.
        return [Notice(*row) for row in rows]

    async def outbox_update(self, notice: Notice) -> None:
        self._execute(
            "UPDATE outbox SET attempts = ?, next_at = ?, delivered = ?, last_status = ?, "
            "last_error = ?, tries = ? WHERE id = ?",
            (notice.attempts, notice.next_at, notice.delivered, notice.last_status,
             notice.last_error, notice.tries, notice.id),
        )  # fmt: skip

    async def notices(self, run_id: str) -> list[Notice]:
        rows = self.db.execute(
            f"SELECT {_NOTICE} FROM outbox WHERE run_id = ? ORDER BY created, id", (run_id,)
        )
        return [Notice(*row) for row in rows]

    # -- pruning -------------------------------------------------------------------------

    async def prune(
        self,
        created_before: float,
        claims_before: float | None = None,
        keep_bytes: int | None = None,
    ) -> int:
        """Finished runs older than ``created_before`` (by id: ULIDs sort by time), then
        the oldest finished ones while the live data is over ``keep_bytes``; in batches
        with a yield between, the freed pages given back to the file system."""
        removed = 0
        cutoff = id_before(created_before)
        while batch := self._oldest(cutoff):
            removed += self._delete(batch)
            await asyncio.sleep(0)
        while keep_bytes is not None and self.size()["live"] > keep_bytes:
            batch = self._oldest(None, PRUNE_BATCH // 4)
            if not batch:
                break
            removed += self._delete(batch)
            await self._give_back()
        if claims_before is not None:
            self._execute("DELETE FROM claims WHERE created < ?", (claims_before,))
        await self._give_back()
        return removed

    def _oldest(self, cutoff: str | None, count: int = PRUNE_BATCH) -> list[tuple[int, str]]:
        marks = ",".join("?" * len(_FINAL))
        below = "id < ? AND " if cutoff is not None else ""
        args = ((cutoff,) if cutoff is not None else ()) + _FINAL + (count,)
        return list(
            self.db.execute(
                f"SELECT key, id FROM runs WHERE {below}state IN ({marks}) ORDER BY id LIMIT ?",
                args,
            )
        )

    def _delete(self, batch: list[tuple[int, str]]) -> int:
        db = self.db
        keys = [(key,) for key, _ in batch]
        try:
            db.execute("BEGIN")
            db.executemany("DELETE FROM events WHERE run = ?", keys)
            db.executemany("DELETE FROM outbox WHERE run_id = ?", [(i,) for _, i in batch])
            db.executemany("DELETE FROM runs WHERE key = ?", keys)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot prune the run store: {exc}") from exc
        return len(batch)

    def _execute(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to the run store {self.path}: {exc}") from exc

    async def _give_back(self) -> None:
        """Return free pages to the file system, a few hundred at a time."""
        while self.size()["free"] > 0:
            self._execute("PRAGMA incremental_vacuum(500)", ())
            await asyncio.sleep(0)
            if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                return  # a file without incremental vacuum (made read-only elsewhere)

    def size(self) -> dict[str, int]:
        """Bytes of the file: ``total``, ``free`` (pages pruning freed) and ``live``."""
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return {"total": pages * page, "free": free * page, "live": (pages - free) * page}

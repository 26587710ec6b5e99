"""SQLite store: one file in the state directory, WAL mode.

Calls run on the event loop thread on purpose. With WAL and ``synchronous=NORMAL`` a commit
is a ``write()`` into the WAL without fsync — tens of microseconds, less than handing the
work to a thread — and it survives a crash of the process (``kill -9``); only a power loss
can take the last transactions. Other processes (``runner runs``, ``runner logs``) read
the same file concurrently, as WAL allows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from runner.errors import StoreError
from runner.records import FINAL, Claim, Event, RunRecord, Trigger

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL,
    caller TEXT NOT NULL,
    created REAL NOT NULL,
    timeout REAL NOT NULL,
    lock_key TEXT,
    started REAL,
    finished REAL,
    exit_code INTEGER,
    reason TEXT,
    last_event INTEGER NOT NULL,
    had_secrets INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    trigger TEXT,
    body BLOB
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, id);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state, id);
CREATE INDEX IF NOT EXISTS runs_caller ON runs (job, caller);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    owner TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
"""

BUSY_MS = 20  # the longest a call on the loop waits for another process's write lock

_RUN_COLUMNS = (
    "id, job, state, params, caller, created, timeout, lock_key, started, finished, "
    "exit_code, reason, last_event, had_secrets, owner, trigger"
)
# The body is written with the first insert and never again (nor read with the record).
_UPSERT = (
    f"INSERT INTO runs ({_RUN_COLUMNS}, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(id) DO UPDATE SET state=excluded.state, started=excluded.started, "
    "finished=excluded.finished, exit_code=excluded.exit_code, reason=excluded.reason, "
    "last_event=excluded.last_event, lock_key=excluded.lock_key, owner=excluded.owner"
)


def _row(run: RunRecord) -> tuple[object, ...]:
    if not run.params_json:
        run.params_json = json.dumps(run.params)
        run.trigger_json = run.trigger.stored()
    return (
        run.id,
        run.job,
        run.state,
        run.params_json,
        run.caller,
        run.created,
        run.timeout,
        run.lock_key,
        run.started,
        run.finished,
        run.exit_code,
        run.reason,
        run.last_event,
        int(run.had_secrets),
        run.owner,
        run.trigger_json,
        run.body or None,
    )


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row[0],
        job=row[1],
        state=row[2],
        params=json.loads(row[3]),
        caller=row[4],
        created=row[5],
        timeout=row[6],
        lock_key=row[7],
        started=row[8],
        finished=row[9],
        exit_code=row[10],
        reason=row[11],
        last_event=row[12],
        had_secrets=bool(row[13]),
        owner=row[14],
        trigger=Trigger.loaded(row[15]),
    )


class SQLiteStore:
    """The embedded store. ``path`` is created with its folder if missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

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
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # At start, wait for another process holding the file; afterwards not: the
            # connection is used on the event loop, where a wait would stall every request.
            # A busy write fails at once and the journal retries it with backoff.
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            # Stores made before runs recorded their lease holder and their trigger.
            if "owner" not in columns:
                db.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
            if "trigger" not in columns:
                db.execute("ALTER TABLE runs ADD COLUMN trigger TEXT")
            if "body" not in columns:
                db.execute("ALTER TABLE runs ADD COLUMN body BLOB")
            db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the run store {self.path}: {exc}") from exc
        self.path.chmod(0o600)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def write(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> None:
        self.write_now(runs, events)

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
                    "INSERT INTO events (run_id, seq, kind, data, ts) VALUES (?,?,?,?,?)",
                    [(e.run_id, e.seq, e.kind, e.data, e.ts) for e in events],
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot write to the run store {self.path}: {exc}") from exc

    async def get(self, run_id: str) -> RunRecord | None:
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _record(row)

    async def list_runs(
        self,
        *,
        job: str | None = None,
        jobs: Sequence[str] | None = None,
        states: Sequence[str] = (),
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        where, args = [], []
        if job is not None:
            where.append("job = ?")
            args.append(job)
        if jobs is not None:
            where.append(f"job IN ({','.join('?' * len(jobs))})" if jobs else "0")
            args.extend(jobs)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(str(limit))
        return [_record(r) for r in self.db.execute(sql, args)]

    async def body(self, run_id: str) -> bytes:
        row = self.db.execute("SELECT body FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else b""

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

    async def events(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        rows = self.db.execute(
            "SELECT seq, kind, data, ts FROM events WHERE run_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (run_id, after, limit),
        )
        return [Event(run_id, seq, kind, data, ts) for seq, kind, data, ts in rows]

    async def prune(self, created_before: float, claims_before: float | None = None) -> int:
        db = self.db
        final = tuple(FINAL)
        marks = ",".join("?" * len(final))
        db.execute("BEGIN")
        try:
            db.execute(
                f"DELETE FROM events WHERE run_id IN (SELECT id FROM runs "
                f"WHERE created < ? AND state IN ({marks}))",
                (created_before, *final),
            )
            cur = db.execute(
                f"DELETE FROM runs WHERE created < ? AND state IN ({marks})",
                (created_before, *final),
            )
            if claims_before is not None:
                db.execute("DELETE FROM claims WHERE created < ?", (claims_before,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise StoreError(f"cannot prune the run store: {exc}") from exc
        return cur.rowcount

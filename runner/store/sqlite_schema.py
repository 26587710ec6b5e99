"""The SQLite store's file: its schema, its settings, and the upgrade of older files.

    runs     one row per run; ``key`` (an integer) names it in ``events``, ``id`` in the
             API. Indexes serve each filter of the history: job, state, job+state,
             caller, each with ``id`` so a page is an index range scan at any size.
    events   (run key, seq) → kind (a small integer), text, time. WITHOUT ROWID: the rows
             live in their primary key; no run id repeated in every row.
    claims   request keys taken by runs (delivery ids, Idempotency-Key).
    outbox   notices to deliver about runs (notifications, chat replies), until delivered.

Version 1 files (run ids in every event row) are rebuilt into version 2 at open, once.
"""

from __future__ import annotations

import sqlite3

VERSION = 2

# Event kinds as stored: the SSE names are for the wire.
KIND_CODES = {"run": 0, "output": 1, "error": 2, "status": 3, "done": 4}
KIND_NAMES = {code: name for name, code in KIND_CODES.items()}

RUN_COLUMNS = (
    "id, job, state, params, caller, created, timeout, lock_key, started, finished, "
    "exit_code, reason, last_event, had_secrets, owner, trigger"
)

# Who started a run, without a webhook's delivery id: ``webhook:github/<id>`` is
# ``webhook:github``. The history's ``caller`` filter matches on it (one index range scan
# for a sender's every delivery), and SQLite uses an index on an expression only for the
# very same expression: this one string is both.
SENDER = (
    "CASE WHEN instr(caller, '/') > 0 "
    "THEN substr(caller, 1, instr(caller, '/') - 1) ELSE caller END"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
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
CREATE INDEX IF NOT EXISTS runs_job_state ON runs (job, state, id);
DROP INDEX IF EXISTS runs_caller;
CREATE INDEX IF NOT EXISTS runs_sender ON runs ({SENDER}, id);
CREATE TABLE IF NOT EXISTS events (
    run INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    data TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (run, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    deadline REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered REAL,
    last_status INTEGER,
    last_error TEXT,
    tries TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered, next_at);
CREATE INDEX IF NOT EXISTS outbox_run ON outbox (run_id);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    owner TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
""".replace("{SENDER}", SENDER)


def prepare(db: sqlite3.Connection) -> None:
    """Settings of the connection, then the schema, upgrading a version-1 file."""
    # Pages freed by pruning go back to the file system a few at a time (pruning asks
    # for it); a new file can only be set up so before anything is written to it, even
    # the switch to WAL.
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    # The WAL is truncated back to this size after a checkpoint: a burst leaves no 64 MB
    # file behind.
    db.execute(f"PRAGMA journal_size_limit={16 << 20}")
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "runs" in tables and "key" not in _columns(db, "runs"):
        _upgrade_from_v1(db, has_events="events" in tables)
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version={VERSION}")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _upgrade_from_v1(db: sqlite3.Connection, *, has_events: bool) -> None:
    """Rebuild a version-1 file: runs get an integer key, events name runs by it."""
    columns = _columns(db, "runs")
    # Columns added to version 1 over time: a file may predate any of them.
    owner = "owner" if "owner" in columns else "''"
    trigger = "trigger" if "trigger" in columns else "NULL"
    body = "body" if "body" in columns else "NULL"
    kinds = " ".join(f"WHEN '{name}' THEN {code}" for name, code in KIND_CODES.items())
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE runs RENAME TO runs_v1")
        if has_events:
            db.execute("ALTER TABLE events RENAME TO events_v1")
        for index in ("runs_job", "runs_state", "runs_caller"):
            db.execute(f"DROP INDEX IF EXISTS {index}")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}, body) SELECT id, job, state, params, caller, "
            "created, timeout, lock_key, started, finished, exit_code, reason, last_event, "
            f"had_secrets, {owner}, {trigger}, {body} FROM runs_v1 ORDER BY id"
        )
        if has_events:
            db.execute(
                f"INSERT INTO events (run, seq, kind, data, ts) SELECT r.key, e.seq, "
                f"CASE e.kind {kinds} ELSE 1 END, e.data, e.ts "
                "FROM events_v1 e JOIN runs r ON r.id = e.run_id"
            )
            db.execute("DROP TABLE events_v1")
        db.execute("DROP TABLE runs_v1")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    # The rebuild left the old pages free; VACUUM gives them back and, on a file made
    # before auto_vacuum was set, turns incremental vacuum on.
    db.execute("VACUUM")

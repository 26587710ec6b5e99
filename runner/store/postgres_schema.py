"""The PostgreSQL store's schema: a short versioned list of migrations, applied at open
under an advisory lock so that replicas starting together migrate once.

    runs      one row per run, as in SQLite (``key`` names it in ``events``), plus what
              replicas share: ``attempt`` (fences a holder that lost its run), ``cancel``
              (a cancel asked on another replica), ``watched`` (followed from another
              replica: its batches ring the doorbell). ``sender`` is stored, generated from
              ``caller``, so the history's caller filter is an index range scan.
    events    (run key, seq) → kind, text, time.
    claims    request keys (delivery ids, Idempotency-Key): unique rows.
    outbox    notices to deliver; taken under a lease with SKIP LOCKED.
    replicas  one row per live executor: its heartbeat (``seen``, the database's clock).
    locks     lock keys held by running runs, across every replica.

No migration tool: the kept ones (yoyo, alembic) bring a second driver or an ORM and
their own locking; a list of SQL steps and one ``schema_version`` row is all this needs.
"""

from __future__ import annotations

MIGRATE_LOCK = 0x72756E6E6572  # "runner": pg_advisory_xact_lock key for migrations

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE runs (
        key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        job text NOT NULL,
        state text NOT NULL,
        params text NOT NULL,
        caller text NOT NULL,
        sender text GENERATED ALWAYS AS (split_part(caller, '/', 1)) STORED,
        created double precision NOT NULL,
        timeout double precision NOT NULL,
        lock_key text,
        started double precision,
        finished double precision,
        exit_code integer,
        reason text,
        last_event integer NOT NULL,
        had_secrets boolean NOT NULL DEFAULT false,
        owner text NOT NULL DEFAULT '',
        trigger text,
        body bytea,
        attempt integer NOT NULL DEFAULT 0,
        cancel text,
        watched boolean NOT NULL DEFAULT false
    );
    CREATE INDEX runs_job ON runs (job, id);
    CREATE INDEX runs_state ON runs (state, id);
    CREATE INDEX runs_job_state ON runs (job, state, id);
    CREATE INDEX runs_sender ON runs (sender, id);
    -- the shared queue and what replicas hold: small partial indexes
    CREATE INDEX runs_live ON runs (owner, id) WHERE state IN ('queued', 'running');
    CREATE TABLE events (
        run bigint NOT NULL,
        seq integer NOT NULL,
        kind smallint NOT NULL,
        data text NOT NULL,
        ts double precision NOT NULL,
        PRIMARY KEY (run, seq)
    );
    CREATE TABLE outbox (
        id text PRIMARY KEY,
        run_id text NOT NULL,
        channel text NOT NULL,
        target text NOT NULL,
        body text NOT NULL,
        created double precision NOT NULL,
        deadline double precision NOT NULL,
        next_at double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        delivered double precision,
        last_status integer,
        last_error text
    );
    CREATE INDEX outbox_due ON outbox (next_at) WHERE delivered IS NULL;
    CREATE INDEX outbox_run ON outbox (run_id);
    CREATE TABLE claims (
        key text PRIMARY KEY,
        run_id text NOT NULL,
        fingerprint text NOT NULL,
        owner text NOT NULL,
        created double precision NOT NULL
    );
    CREATE INDEX claims_created ON claims (created);
    CREATE TABLE replicas (
        owner text PRIMARY KEY,
        started timestamptz NOT NULL DEFAULT now(),
        seen timestamptz NOT NULL DEFAULT now(),
        draining boolean NOT NULL DEFAULT false
    );
    CREATE TABLE locks (
        key text PRIMARY KEY,
        run_id text NOT NULL,
        attempt integer NOT NULL
    );
    CREATE INDEX locks_run ON locks (run_id);
    """,
)
VERSION = len(MIGRATIONS)

# Event kinds as stored (the same codes as SQLite's, so a migration copies them as they are).
KIND_CODES = {"run": 0, "output": 1, "error": 2, "status": 3, "done": 4}
KIND_NAMES = {code: name for name, code in KIND_CODES.items()}

RUN_COLUMNS = (
    "id, job, state, params, caller, created, timeout, lock_key, started, finished, "
    "exit_code, reason, last_event, had_secrets, owner, trigger"
)

"""``runner store migrate --from sqlite:PATH --to postgresql://…``: one-shot copy of a
SQLite history into PostgreSQL, for the move from one host to replicas.

Runs (with their kept bodies), every event, claims and the outbox are copied as they are;
a run already in the target is left alone with its events (so a second migrate after an
interruption copies only what is missing). Stop the SQLite server first: a run it still
holds is copied as it stands, and the replicas then treat it as left by a stopped
process — running runs become ``interrupted``, queued ones run on a replica.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import StoreError
from runner.store.postgres import PostgresStore
from runner.store.postgres_schema import RUN_COLUMNS

BATCH = 500  # runs per transaction


@dataclass
class Copied:
    runs: int = 0
    skipped: int = 0
    events: int = 0
    claims: int = 0
    notices: int = 0

    def __str__(self) -> str:
        return (
            f"copied {self.runs} runs ({self.events} events), {self.claims} claims and "
            f"{self.notices} notices; {self.skipped} runs were there already"
        )


def _source(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StoreError(f"no SQLite store at {path} (give --from sqlite:PATH)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    if "runs" not in tables or "key" not in columns:
        db.close()
        raise StoreError(
            f"{path} is not a current runner store (open it once with this runner to "
            "upgrade it, then migrate)"
        )
    return db


async def migrate(source: Path, target: PostgresStore) -> Copied:
    """Copy the history at ``source`` into ``target`` (opened here, migrated, closed)."""
    db = _source(source)
    copied = Copied()
    await target.open()
    try:
        last = -1
        while True:
            rows = db.execute(
                f"SELECT key, {RUN_COLUMNS}, body FROM runs WHERE key > ? ORDER BY key LIMIT ?",
                (last, BATCH),
            ).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            await _copy_runs(db, target, rows, copied)
        await _copy_rest(db, target, copied)
    finally:
        db.close()
        await target.close()
    return copied


async def _copy_runs(
    db: sqlite3.Connection, target: PostgresStore, rows: list[Any], out: Copied
) -> None:
    values = [
        (*row[1:14], bool(row[14]), *row[15:17], bytes(row[17]) if row[17] is not None else None)
        for row in rows
    ]  # fmt: skip
    async with target.pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetch(
            f"INSERT INTO runs ({RUN_COLUMNS}, body) SELECT * FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], "
            "$7::float8[], $8::text[], $9::float8[], $10::float8[], $11::int[], $12::text[], "
            "$13::int[], $14::bool[], $15::text[], $16::text[], $17::bytea[]) "
            "ON CONFLICT (id) DO NOTHING RETURNING id, key",
            *[list(column) for column in zip(*values, strict=True)],
        )
        keys = {r["id"]: r["key"] for r in inserted}
        out.runs += len(keys)
        out.skipped += len(rows) - len(keys)
        for row in rows:
            new_key = keys.get(str(row[1]))
            if new_key is None:
                continue
            events = [
                (new_key, seq, kind, data, ts)
                for seq, kind, data, ts in db.execute(
                    "SELECT seq, kind, data, ts FROM events WHERE run = ? ORDER BY seq", (row[0],)
                )
            ]
            if events:
                await conn.copy_records_to_table(
                    "events", records=events, columns=["run", "seq", "kind", "data", "ts"]
                )
                out.events += len(events)


async def _copy_rest(db: sqlite3.Connection, target: PostgresStore, out: Copied) -> None:
    claims = db.execute("SELECT key, run_id, fingerprint, owner, created FROM claims").fetchall()
    notices = db.execute(
        "SELECT id, run_id, channel, target, body, created, deadline, next_at, attempts, "
        "delivered, last_status, last_error FROM outbox"
    ).fetchall()
    async with target.pool.acquire() as conn, conn.transaction():
        if claims:
            await conn.executemany(
                "INSERT INTO claims (key, run_id, fingerprint, owner, created) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
                claims,
            )
        if notices:
            await conn.executemany(
                "INSERT INTO outbox (id, run_id, channel, target, body, created, deadline, "
                "next_at, attempts, delivered, last_status, last_error) VALUES "
                "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (id) DO NOTHING",
                notices,
            )
    out.claims, out.notices = len(claims), len(notices)

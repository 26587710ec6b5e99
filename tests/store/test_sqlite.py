"""The SQLite store at scale: query plans, pruning that gives space back, old files."""

from __future__ import annotations

import itertools
import sqlite3
import time

import pytest
from ulid import ULID

from runner.records import Event, RunRecord
from runner.store import SQLiteStore

pytestmark = pytest.mark.anyio


def _run(i: int, created: float, state: str = "succeeded", job: str = "a/b") -> RunRecord:
    return RunRecord(
        id=str(ULID.from_timestamp(created)), job=job, state=state, params={"i": i},
        caller=f"user:u{i % 3}", created=created, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("job", "state", "caller", "before"),
    list(
        itertools.product(
            ["a/b", None], ["failed", None], ["user:u1", "webhook:github/d1", None], ["01J", None]
        )
    ),
)
def test_every_page_of_the_history_is_an_index_range_scan(tmp_path, job, state, caller, before):
    """Each filter combination the API offers reads an index in id order: no scan of the
    runs table, no sort in a temporary tree, whatever the history's size."""
    db = sqlite3.connect(tmp_path / "plan.db")
    from runner.store.sqlite_schema import prepare

    prepare(db)
    sql, args = SQLiteStore.page_query(job, state, caller, before, 50)
    plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
    assert "SCAN runs" not in plan or "USING" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    if job or state or caller:
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan


async def test_pruning_a_large_history_gives_the_space_back(tmp_path):
    """Pruning old runs shrinks the file to near its live data (incremental vacuum)."""
    store = SQLiteStore(tmp_path / "runs.db")
    await store.open()
    try:
        old, new = time.time() - 90 * 86400, time.time()
        runs = [_run(i, old + i) for i in range(2000)] + [_run(i, new) for i in range(10)]
        for run in runs:
            run.last_event = 20
        events = [
            Event(r.id, s, "output", f"line {s} of a run that is long enough to weigh", 1.0)
            for r in runs for s in range(1, 21)
        ]  # fmt: skip
        await store.write(runs, events)
        before = store.size()
        removed = await store.prune(time.time() - 30 * 86400)
        after = store.size()
        assert removed == 2000
        assert after["total"] < before["total"] / 5
        assert after["free"] == 0
        assert len(await store.list_runs(limit=100)) == 10
    finally:
        await store.close()


async def test_keep_bytes_prunes_the_oldest_finished_runs_first(tmp_path):
    """Over keep_bytes, the oldest finished runs go first; running ones stay."""
    store = SQLiteStore(tmp_path / "runs.db")
    await store.open()
    try:
        start = time.time() - 1000
        runs = [_run(i, start + i) for i in range(600)] + [_run(999, start, "running")]
        events = [Event(r.id, 1, "output", "x" * 2000, 1.0) for r in runs]
        for run in runs:
            run.last_event = 1
        await store.write(runs, events)
        await store.prune(0.0, keep_bytes=400_000)
        left = await store.list_runs(limit=500)
        assert store.size()["live"] <= 400_000 + 200_000
        assert any(r.state == "running" for r in left)
        kept = sorted(r.created for r in left if r.state == "succeeded")
        assert kept and kept[0] > start + 100  # the oldest were the ones that went
    finally:
        await store.close()


async def test_a_version_1_file_is_upgraded_with_its_events(tmp_path):
    """A store file written before run keys (run ids in every event row) is rebuilt at
    open: its runs and their events read back the same."""
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, job TEXT NOT NULL, state TEXT NOT NULL, "
        "params TEXT NOT NULL, caller TEXT NOT NULL, created REAL NOT NULL, timeout REAL NOT "
        "NULL, lock_key TEXT, started REAL, finished REAL, exit_code INTEGER, reason TEXT, "
        "last_event INTEGER NOT NULL, had_secrets INTEGER NOT NULL DEFAULT 0, owner TEXT NOT "
        "NULL DEFAULT '', trigger TEXT);"
        "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, "
        "data TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;"
        "INSERT INTO runs VALUES ('01OLD', 'a/b', 'failed', '{\"x\": 1}', 'user:a', 1.0, 60, "
        "NULL, 1.0, 2.0, 3, 'why', 3, 0, '', NULL);"
        "INSERT INTO events VALUES ('01OLD', 1, 'run', '{}', 1.0), ('01OLD', 2, 'output', "
        "'hello', 1.5), ('01OLD', 3, 'done', '{\"state\": \"failed\"}', 2.0);"
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        run = await store.get("01OLD")
        assert run is not None and (run.state, run.exit_code, run.params) == ("failed", 3, {"x": 1})
        events = await store.events("01OLD")
        assert [(e.seq, e.kind, e.data) for e in events] == [
            (1, "run", "{}"), (2, "output", "hello"), (3, "done", '{"state": "failed"}')
        ]  # fmt: skip
    finally:
        await store.close()

"""The store contract: what every backend (SQLite now, PostgreSQL later) must do."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.records import Event, RunRecord, new_run_id
from runner.store.base import Store
from runner.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite"])
def store(request, tmp_path: Path) -> Iterator[Store]:
    """Each backend, opened on a fresh database."""
    backend = SQLiteStore(tmp_path / "runs.db")
    asyncio.run(backend.open())
    yield backend
    asyncio.run(backend.close())


def _run(job: str = "a/b", state: str = "queued", created: float | None = None) -> RunRecord:
    return RunRecord(
        id=new_run_id(),
        job=job,
        state=state,
        params={"rg": "x", "pw": "***"},
        caller="test",
        created=created if created is not None else time.time(),
        timeout=60,
    )


def test_write_then_read_back_runs_and_events(store):
    """A run and its events come back as written, events in order."""
    run = _run()
    events = [Event(run.id, i, "output", f"line {i}", 1.0) for i in range(1, 4)]
    run.last_event = 3
    asyncio.run(store.write([run], events))
    got = asyncio.run(store.get(run.id))
    assert got is not None and got.to_json() == run.to_json()
    assert asyncio.run(store.events(run.id)) == events
    assert asyncio.run(store.events(run.id, after=2)) == events[2:]
    assert asyncio.run(store.events(run.id, after=0, limit=2)) == events[:2]


def test_upsert_updates_state_and_timings(store):
    """Writing a run again updates its state, timings, exit code and reason."""
    run = _run()
    asyncio.run(store.write([run], []))
    run.state, run.started, run.finished, run.exit_code, run.reason = "failed", 1.0, 2.5, 3, "x"
    asyncio.run(store.write([run], []))
    got = asyncio.run(store.get(run.id))
    assert (got.state, got.duration, got.exit_code, got.reason) == ("failed", 1.5, 3, "x")


def test_a_batch_is_all_or_nothing(store):
    """A batch with a duplicate event number fails whole: no partial write."""
    run = _run()
    asyncio.run(store.write([run], [Event(run.id, 1, "output", "a", 1.0)]))
    with pytest.raises(Exception):  # noqa: B017 - the backend's own error type
        asyncio.run(
            store.write(
                [run],
                [Event(run.id, 2, "output", "b", 1.0), Event(run.id, 1, "output", "dup", 1.0)],
            )
        )
    assert [e.data for e in asyncio.run(store.events(run.id))] == ["a"]


def test_list_filters_and_pages_newest_first(store):
    """list_runs filters by job and states and pages with an id cursor."""
    runs = [
        _run(job="j/one" if i % 2 else "j/two", state="succeeded" if i < 3 else "queued")
        for i in range(5)
    ]
    asyncio.run(store.write(runs, []))
    newest = asyncio.run(store.list_runs(limit=2))
    assert [r.id for r in newest] == [runs[4].id, runs[3].id]
    older = asyncio.run(store.list_runs(before=newest[-1].id, limit=10))
    assert [r.id for r in older] == [runs[2].id, runs[1].id, runs[0].id]
    assert {r.id for r in asyncio.run(store.list_runs(job="j/one"))} == {runs[1].id, runs[3].id}
    queued = asyncio.run(store.list_runs(states=["queued"]))
    assert {r.id for r in queued} == {runs[3].id, runs[4].id}


def test_find_run_by_job_and_caller(store):
    """find_run gives the newest run of a job started by one caller, or None."""
    a, b = _run(job="ci/deploy"), _run(job="ci/deploy")
    a.caller = b.caller = "webhook:github/d-1"
    other = _run(job="ci/other")
    other.caller = "webhook:github/d-1"
    asyncio.run(store.write([a, b, other], []))
    assert asyncio.run(store.find_run("ci/deploy", "webhook:github/d-1")).id == b.id
    assert asyncio.run(store.find_run("ci/deploy", "webhook:github/d-2")) is None


def test_prune_removes_old_finished_runs_only(store):
    """Pruning deletes finished runs older than the cutoff with their events, never live ones."""
    old_done = _run(state="succeeded", created=100.0)
    old_queued = _run(state="queued", created=100.0)
    new_done = _run(state="succeeded")
    asyncio.run(
        store.write([old_done, old_queued, new_done], [Event(old_done.id, 1, "output", "x", 1.0)])
    )
    assert asyncio.run(store.prune(created_before=1000.0)) == 1
    assert asyncio.run(store.get(old_done.id)) is None
    assert asyncio.run(store.events(old_done.id)) == []
    assert asyncio.run(store.get(old_queued.id)) is not None
    assert asyncio.run(store.get(new_done.id)) is not None


def test_sqlite_store_is_a_wal_file_readable_by_others(tmp_path):
    """The SQLite file uses WAL and is 0600; another connection sees committed runs."""
    store = SQLiteStore(tmp_path / "s" / "runs.db")
    asyncio.run(store.open())
    run = _run()
    asyncio.run(store.write([run], []))
    other = sqlite3.connect(tmp_path / "s" / "runs.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT id FROM runs").fetchall() == [(run.id,)]
    assert (tmp_path / "s" / "runs.db").stat().st_mode & 0o777 == 0o600
    other.close()
    asyncio.run(store.close())


def test_run_ids_sort_by_creation_time():
    """Run ids are unique and sort in creation order."""
    ids = [new_run_id() for _ in range(50)]
    time.sleep(0.002)
    later = new_run_id()
    assert len(set(ids)) == 50
    assert all(later > i for i in ids)

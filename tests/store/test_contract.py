"""The store contract: what every backend (SQLite now, PostgreSQL later) must do."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import pytest
from ulid import ULID

from runner.records import Claim, Event, Notice, RunRecord, Trigger, new_run_id
from runner.store import SQLiteStore

pytestmark = pytest.mark.anyio


def _run(job: str = "a/b", state: str = "queued", created: float | None = None) -> RunRecord:
    # A run's id tells when it was made (ULIDs sort by time), as its `created` does.
    return RunRecord(
        id=new_run_id() if created is None else str(ULID.from_timestamp(created)),
        job=job,
        state=state,
        params={"rg": "x", "pw": "***"},
        caller="test",
        created=created if created is not None else time.time(),
        timeout=60,
    )


async def test_write_then_read_back_runs_and_events(store):
    """A run and its events come back as written, events in order."""
    run = _run()
    events = [Event(run.id, i, "output", f"line {i}", 1.0) for i in range(1, 4)]
    run.last_event = 3
    await store.write([run], events)
    got = await store.get(run.id)
    assert got is not None and got.to_json() == run.to_json()
    assert await store.events(run.id) == events
    assert await store.events(run.id, after=2) == events[2:]
    assert await store.events(run.id, after=0, limit=2) == events[:2]


async def test_a_run_keeps_its_trigger_and_its_reply_address(store):
    """The trigger comes back whole: what the API shows, and the reply hooks need."""
    run = _run()
    run.trigger = Trigger(
        "slack",
        "ev-1",
        "command",
        "10.0.0.5",
        {"response_url": "https://hooks.invalid/x"},
        fields={"ref": "refs/heads/main", "pr": 42},
    )
    await store.write([run], [])
    got = await store.get(run.id)
    assert got is not None and got.trigger == run.trigger
    assert "reply" not in got.to_json()["trigger"]


async def test_a_runs_body_is_kept_apart_and_never_shown(store):
    """A script's body comes back from body() after later writes of the run, and is in
    neither its record nor the history."""
    run = _run()
    run.body = b"payload\x01\xff"
    await store.write([run], [])
    run.state = "running"
    run.body = b""
    await store.write([run], [])
    assert await store.body(run.id) == b"payload\x01\xff"
    assert await store.body("nope") == b""
    got = await store.get(run.id)
    assert got is not None and got.body == b"" and "body" not in got.to_json()


async def test_upsert_updates_state_and_timings(store):
    """Writing a run again updates its state, timings, exit code and reason."""
    run = _run()
    await store.write([run], [])
    run.state, run.started, run.finished, run.exit_code, run.reason = "failed", 1.0, 2.5, 3, "x"
    await store.write([run], [])
    got = await store.get(run.id)
    assert (got.state, got.duration, got.exit_code, got.reason) == ("failed", 1.5, 3, "x")


async def test_a_batch_is_all_or_nothing(store):
    """A batch with a duplicate event number fails whole: no partial write."""
    run = _run()
    await store.write([run], [Event(run.id, 1, "output", "a", 1.0)])
    with pytest.raises(Exception):  # noqa: B017 - the backend's own error type
        await store.write(
            [run],
            [Event(run.id, 2, "output", "b", 1.0), Event(run.id, 1, "output", "dup", 1.0)],
        )
    assert [e.data for e in await store.events(run.id)] == ["a"]


async def test_list_filters_and_pages_newest_first(store):
    """list_runs filters by job and states and pages with an id cursor."""
    runs = [
        _run(job="j/one" if i % 2 else "j/two", state="succeeded" if i < 3 else "queued")
        for i in range(5)
    ]
    await store.write(runs, [])
    newest = await store.list_runs(limit=2)
    assert [r.id for r in newest] == [runs[4].id, runs[3].id]
    older = await store.list_runs(before=newest[-1].id, limit=10)
    assert [r.id for r in older] == [runs[2].id, runs[1].id, runs[0].id]
    assert {r.id for r in await store.list_runs(job="j/one")} == {runs[1].id, runs[3].id}
    queued = await store.list_runs(states=["queued"])
    assert {r.id for r in queued} == {runs[3].id, runs[4].id}


async def test_the_caller_filter_matches_a_sender_and_each_of_its_deliveries(store):
    """``webhook:github`` finds every delivery of GitHub, ``webhook:github/d1`` one, and
    neither finds a sender whose name merely starts the same."""
    callers = ["webhook:github/d1", "webhook:github/d2", "webhook:githubber/d3", "user:al"]
    runs = []
    for caller in callers:
        run = _run()
        run.caller = caller
        runs.append(run)
    await store.write(runs, [])
    sender = await store.list_runs(caller="webhook:github")
    assert [r.caller for r in sender] == ["webhook:github/d2", "webhook:github/d1"]
    one = await store.list_runs(caller="webhook:github/d1")
    assert [r.caller for r in one] == ["webhook:github/d1"]
    assert [r.caller for r in await store.list_runs(caller="user:al")] == ["user:al"]
    assert await store.list_runs(caller="user:a") == []


def _notice(run_id: str, n: int, now: float) -> Notice:
    body = '{"state": "succeeded"}'
    return Notice(f"msg_{run_id}_{n}", run_id, "webhook", "https://hooks.test/x", body,
                  created=now, deadline=now + 3600, next_at=now)  # fmt: skip


async def test_the_outbox_hands_each_due_notice_to_one_taker_until_delivered(store):
    """A notice is added once (ids are idempotent), taken by one sender at a time (a
    lease), due again after a failed try or a lapsed lease, and never after delivery."""
    run = _run(state="succeeded")
    await store.write([run], [])
    now = 1_000_000.0
    first = _notice(run.id, 1, now)
    await store.outbox_add([first, _notice(run.id, 2, now + 5)])
    await store.outbox_add([dataclasses.replace(first, body="{}")])  # a retry of the add
    taken = await store.outbox_take(now, lease=30)
    assert [n.id for n in taken] == [first.id]
    assert taken[0].body == first.body
    # The first is leased; the second came due meanwhile.
    assert [n.id for n in await store.outbox_take(now + 10, lease=30)] == [f"msg_{run.id}_2"]
    assert await store.outbox_take(now + 20, lease=30) == [], "both leased"
    # A sender that died mid-try: the lease lapses, another takes it.
    assert [n.id for n in await store.outbox_take(now + 31, lease=30)] == [first.id]
    tried = dataclasses.replace(first, attempts=1, next_at=now + 100, last_status=503,
                                last_error="503 from the receiver")  # fmt: skip
    await store.outbox_update(tried)
    # Due again after its backoff (the second's lease lapsed before: oldest due first).
    again = await store.outbox_take(now + 100, lease=30)
    assert [n.id for n in again] == [f"msg_{run.id}_2", first.id]
    done = dataclasses.replace(tried, attempts=2, delivered=now + 101, last_status=200)
    await store.outbox_update(done)
    later = await store.outbox_take(now + 10_000, lease=30)
    assert [n.id for n in later] == [f"msg_{run.id}_2"], "a delivered notice is never due"
    shown = {n.id: n for n in await store.notices(run.id)}
    assert shown[first.id].delivered == now + 101 and shown[first.id].attempts == 2
    assert len(shown) == 2


async def test_a_notice_past_its_deadline_is_given_up_and_pruned_with_its_run(store):
    run = _run(state="failed", created=time.time() - 90 * 86400)
    await store.write([run], [])
    now = time.time()
    late = dataclasses.replace(_notice(run.id, 1, now), deadline=now - 1, next_at=now)
    await store.outbox_add([late])
    assert await store.outbox_take(now, lease=30) == []
    (shown,) = await store.notices(run.id)
    assert shown.gave_up
    await store.prune(created_before=now - 86400)
    assert await store.notices(run.id) == []


async def test_a_claim_is_taken_once_and_found_by_the_next_taker(store):
    """The first claim of a key holds it; a second gets the first back; release frees it."""
    first = Claim("k:1", "run-a", "fp-a", "owner-a", 1000.0)
    assert await store.claim(first, ttl=60) == first
    second = Claim("k:1", "run-b", "fp-b", "owner-b", 1001.0)
    assert await store.claim(second, ttl=60) == first
    await store.release("k:1", "run-b")  # not its claim: nothing changes
    assert await store.claim(second, ttl=60) == first
    await store.release("k:1", "run-a")
    assert await store.claim(second, ttl=60) == second


async def test_an_expired_claim_is_replaced_and_a_named_one_taken_over(store):
    """Past the ttl a key is free again; ``replacing`` takes over the claim of one run."""
    old = Claim("k:2", "run-a", "fp", "owner-a", 1000.0)
    await store.claim(old, ttl=60)
    later = Claim("k:2", "run-b", "fp", "owner-b", 1061.0)
    assert await store.claim(later, ttl=60) == later
    again = Claim("k:2", "run-c", "fp", "owner-c", 1062.0)
    assert await store.claim(again, ttl=60, replacing="run-x") == later
    assert await store.claim(again, ttl=60, replacing="run-b") == again


async def test_pruning_drops_old_claims(store):
    """Claims older than the cutoff go with the prune; younger ones stay."""
    await store.claim(Claim("k:old", "run-a", "fp", "o", 100.0), ttl=1e9)
    await store.claim(Claim("k:new", "run-b", "fp", "o", 5000.0), ttl=1e9)
    await store.prune(created_before=0.0, claims_before=1000.0)
    fresh = Claim("k:old", "run-c", "fp", "o", 6000.0)
    assert await store.claim(fresh, ttl=1e9) == fresh
    assert (
        await store.claim(Claim("k:new", "run-d", "fp", "o", 6000.0), ttl=1e9)
    ).run_id == "run-b"


async def test_prune_removes_old_finished_runs_only(store):
    """Pruning deletes finished runs older than the cutoff with their events, never live ones."""
    old_done = _run(state="succeeded", created=100.0)
    old_queued = _run(state="queued", created=100.0)
    new_done = _run(state="succeeded")
    await store.write([old_done, old_queued, new_done], [Event(old_done.id, 1, "output", "x", 1.0)])
    assert await store.prune(created_before=1000.0) == 1
    assert await store.get(old_done.id) is None
    assert await store.events(old_done.id) == []
    assert await store.get(old_queued.id) is not None
    assert await store.get(new_done.id) is not None


async def test_sqlite_store_is_a_wal_file_readable_by_others(tmp_path):
    """The SQLite file uses WAL and is 0600; another connection sees committed runs."""
    store = SQLiteStore(tmp_path / "s" / "runs.db")
    await store.open()
    run = _run()
    await store.write([run], [])
    other = sqlite3.connect(tmp_path / "s" / "runs.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT id FROM runs").fetchall() == [(run.id,)]
    assert (tmp_path / "s" / "runs.db").stat().st_mode & 0o777 == 0o600
    other.close()
    await store.close()


async def test_a_store_made_before_triggers_opens_and_reads_its_runs_as_http(tmp_path):
    """An older SQLite file (no trigger column) is upgraded in place at open."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, job TEXT NOT NULL, state TEXT NOT NULL, "
        "params TEXT NOT NULL, caller TEXT NOT NULL, created REAL NOT NULL, "
        "timeout REAL NOT NULL, lock_key TEXT, started REAL, finished REAL, exit_code INTEGER, "
        "reason TEXT, last_event INTEGER NOT NULL, had_secrets INTEGER NOT NULL DEFAULT 0, "
        "owner TEXT NOT NULL DEFAULT '');"
        "INSERT INTO runs VALUES ('01OLD', 'a/b', 'succeeded', '{}', 'user:x', 1.0, 60, NULL, "
        "1.0, 2.0, 0, NULL, 3, 0, '');"
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        got = await store.get("01OLD")
        assert got is not None and got.trigger == Trigger("http")
    finally:
        await store.close()


def test_run_ids_sort_by_creation_time():
    """Run ids are unique and sort in creation order."""
    ids = [new_run_id() for _ in range(50)]
    time.sleep(0.002)
    later = new_run_id()
    assert len(set(ids)) == 50
    assert all(later > i for i in ids)

"""The PostgreSQL store beyond the contract: plans at scale, migrations under a lock,
fenced writers, gap-free numbering and exclusive outbox takes with several replicas."""

from __future__ import annotations

import asyncio
import itertools
import re
import time

import asyncpg
import pytest
from ulid import ULID

from runner.errors import StoreError
from runner.records import Event, Notice, RunRecord
from runner.store.postgres import PostgresStore, redacted
from runner.store.postgres_schema import VERSION

pytestmark = pytest.mark.anyio


def _run(i: int, created: float, state: str = "succeeded", job: str = "a/b") -> RunRecord:
    return RunRecord(
        id=str(ULID.from_timestamp(created)), job=job, state=state, params={"i": i},
        caller=f"webhook:github/d{i}" if i % 5 == 0 else f"user:u{i % 3}",
        created=created, timeout=60,
    )  # fmt: skip


async def _filled(url: str, n: int) -> PostgresStore:
    store = PostgresStore(url)
    await store.open()
    states = ["succeeded", "failed", "queued", "running", "cancelled"]
    base = time.time() - n
    for start in range(0, n, 2000):
        runs = [
            _run(i, base + i, states[i % 5], f"job/{i % 7}") for i in range(start, start + 2000)
        ]
        await store.write(runs, [])
    await store.pool.execute("ANALYZE")
    return store


async def test_every_page_of_the_history_is_an_index_range_scan(pg_database):
    """Each filter combination the API offers reads an index in id order at 20k runs:
    no sequential scan of runs, no sort."""
    store = await _filled(pg_database, 20_000)
    try:
        combos = itertools.product(
            ["job/3", None], ["failed", None], ["user:u1", "webhook:github/d10", None],
            [str(ULID.from_timestamp(time.time() - 5000)), None],
        )  # fmt: skip
        for job, state, caller, before in combos:
            sql, args = PostgresStore.page_query(job, state, caller, before, 50)
            rows = await store.pool.fetch("EXPLAIN " + sql, *args)
            plan = "\n".join(r[0] for r in rows)
            assert "Seq Scan" not in plan, plan
            assert "Index" in plan, plan
            if "Sort" in plan:
                # Only over a handful of rows the planner expects (a sort of a few rows
                # found through an index is cheaper than walking one in order).
                under = plan.split("Sort Key", 1)[1]
                expected = [int(n) for n in re.findall(r"rows=(\d+)", under)]
                assert max(expected[:1] or [0]) <= 50, plan
    finally:
        await store.close()


async def test_a_filter_on_several_states_is_one_statement_reading_few_rows(pg_database):
    """`/_runs?job=J&state=A,B,C,D` at 20k runs: one statement whose plan merges the
    index range scans (no sort of the job's runs), and the same page as state by state."""
    store = await _filled(pg_database, 20_000)
    try:
        states = ["failed", "succeeded", "cancelled", "running"]
        sql, args = PostgresStore.list_query([("job/3", s) for s in states], None, None, 50)
        plan = "\n".join(r[0] for r in await store.pool.fetch("EXPLAIN " + sql, *args))
        assert "Seq Scan" not in plan, plan
        assert not re.search(r"(^|->)\s*Sort\s+\(", plan, re.MULTILINE), plan  # no Sort node
        assert "Merge Append" in plan, plan
        page = await store.list_runs(job="job/3", states=states, limit=50)
        one_by_one = [r for s in states for r in await store.list_runs(job="job/3", states=[s])]
        expected = sorted(one_by_one, key=lambda r: r.id, reverse=True)[:50]
        assert [r.id for r in page] == [r.id for r in expected]
        assert {r.state for r in page} <= set(states) and len(page) == 50
        before = page[-1].id
        second = await store.list_runs(job="job/3", states=states, before=before, limit=50)
        assert second[0].id < before and not {r.id for r in second} & {r.id for r in page}
    finally:
        await store.close()


async def test_replicas_starting_together_migrate_once(pg_database):
    """Three stores opened at once on an empty database: one migrates under the advisory
    lock, the others find the schema done; the version is recorded."""
    stores = [PostgresStore(pg_database) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        version = await stores[0].pool.fetchval("SELECT version FROM runner_schema")
        assert version == VERSION
        assert await stores[0].pool.fetchval("SELECT count(*) FROM runner_schema") == 1
    finally:
        for s in stores:
            await s.close()


async def test_a_newer_schema_is_refused_in_words(pg_database):
    store = PostgresStore(pg_database)
    await store.open()
    await store.pool.execute("UPDATE runner_schema SET version = 999")
    await store.close()
    with pytest.raises(StoreError, match="newer than this runner"):
        await PostgresStore(pg_database).open()


async def test_a_writer_that_lost_its_run_is_fenced_and_numbering_stays_gap_free(pg_database):
    """Two writers for one run (a replica presumed dead, and the peer that took the run):
    the one whose lease was taken writes nothing of it; the events stay 1, 2, 3… with no
    gap and no duplicate, and the other runs of its batch are written."""
    a, b = PostgresStore(pg_database), PostgresStore(pg_database)
    await a.open()
    await b.open()
    try:
        run = _run(1, time.time(), "running")
        run.owner = "replica-a"
        other = _run(2, time.time() + 1, "running")
        other.owner = "replica-a"
        run.last_event = 2
        await a.write([run, other], [Event(run.id, 1, "run", "{}", 1.0),
                                     Event(run.id, 2, "status", "{}", 1.0)])  # fmt: skip
        # The peer takes the run over (as the interruption of a dead replica does).
        await b.pool.execute("UPDATE runs SET owner = 'replica-b' WHERE id = $1", run.id)
        taken = await b.get(run.id)
        assert taken is not None
        taken.owner, taken.last_event, taken.state = "replica-b", 3, "interrupted"
        await b.write([taken], [Event(run.id, 3, "done", "{}", 2.0)])
        # The old holder goes on writing: fenced, its line not stored.
        run.last_event = 3
        other.last_event = 1
        fenced = await a.write(
            [run, other],
            [Event(run.id, 3, "output", "late", 3.0), Event(other.id, 1, "output", "ok", 3.0)],
        )
        assert list(fenced) == [run.id]
        assert [(e.seq, e.kind) for e in await a.events(run.id)] == [
            (1, "run"), (2, "status"), (3, "done")
        ]  # fmt: skip
        assert [e.data for e in await a.events(other.id)] == ["ok"]
        got = await a.get(run.id)
        assert got is not None and got.state == "interrupted"
    finally:
        await a.close()
        await b.close()


async def test_concurrent_writers_of_many_runs_number_every_run_gap_free(pg_database):
    """Eight writers (pool connections) append to their own runs at once: each run's log
    is 1..n exactly."""
    store = PostgresStore(pg_database)
    await store.open()
    try:
        runs = [_run(i, time.time() + i, "running") for i in range(8)]
        await store.write(runs, [])

        async def writer(run: RunRecord) -> None:
            for seq in range(1, 101, 4):
                run.last_event = seq + 3
                await store.write(
                    [run], [Event(run.id, s, "output", f"{s}", 1.0) for s in range(seq, seq + 4)]
                )

        await asyncio.gather(*(writer(r) for r in runs))
        for run in runs:
            assert [e.seq for e in await store.events(run.id)] == list(range(1, 101))
    finally:
        await store.close()


async def test_senders_on_several_replicas_never_take_one_notice_twice(pg_database):
    """Four stores (replicas) take due notices concurrently: every notice goes to exactly
    one of them."""
    stores = [PostgresStore(pg_database) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        run = _run(1, time.time())
        await stores[0].write([run], [])
        now = 1_000_000.0
        notices = [
            Notice(f"n{i}", run.id, "webhook", "https://x.test", "{}", now, now + 99, now)
            for i in range(200)
        ]
        await stores[0].outbox_add(notices)

        async def take(store: PostgresStore) -> list[str]:
            got: list[str] = []
            while batch := await store.outbox_take(now, lease=60, limit=7):
                got += [n.id for n in batch]
            return got

        taken = await asyncio.gather(*(take(s) for s in stores))
        flat = [i for t in taken for i in t]
        assert sorted(flat) == sorted(n.id for n in notices)
        assert len(flat) == len(set(flat))
    finally:
        for s in stores:
            await s.close()


async def test_a_bad_url_or_password_is_an_error_in_words_without_the_password(pg_cluster):
    """A refused login says which store, and never shows the password it was given."""
    url = pg_cluster.url("nosuchdb").replace("runner_admin@", "runner_admin:hunter2@")
    with pytest.raises(StoreError) as err:
        await PostgresStore(url).open()
    assert "hunter2" not in str(err.value)
    assert "nosuchdb" in str(err.value)
    assert redacted("postgresql://u:p%40ss@h/db") == "postgresql://u:***@h/db"


async def test_events_need_their_run(pg_database):
    store = PostgresStore(pg_database)
    await store.open()
    try:
        with pytest.raises(StoreError):
            await store.write([], [Event("nope", 1, "output", "x", 1.0)])
        assert isinstance(store.pool, asyncpg.Pool)
    finally:
        await store.close()


async def test_peers_sweeping_a_silent_replica_at_once_interrupt_its_runs_once(pg_database):
    """Three peers notice one silent replica together: each of its running runs gets one
    `done` (numbered after its last event, naming the replica), its queued run goes back
    to the shared queue, its lock key is freed, and its heartbeat row is gone."""
    from runner.store.postgres_replicas import Board

    stores = [PostgresStore(pg_database) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        dead = Board(stores[0], "host:1:1:1", lease_timeout=0.2)
        await dead.heartbeat()
        runs = [_run(i, time.time() + i, "running") for i in range(3)]
        queued = _run(9, time.time() + 9, "queued")
        for run in [*runs, queued]:
            run.owner = dead.owner
            run.last_event = 2
            run.lock_key = f"k{run.params['i']}"
        await stores[0].write(
            [*runs, queued],
            [Event(r.id, s, "output", "x", 1.0) for r in [*runs, queued] for s in (1, 2)],
        )
        await stores[0].pool.execute(
            "INSERT INTO locks (key, run_id, attempt) VALUES ('k0', $1, 1)", runs[0].id
        )
        await asyncio.sleep(0.4)
        peers = [Board(s, f"peer:{i}:1:1", lease_timeout=0.2) for i, s in enumerate(stores[1:])]
        found = await asyncio.gather(*(p.sweep() for p in peers))
        assert sorted(len(f) for f in found) == [0, 0, 1], found
        for run in runs:
            events = await stores[1].events(run.id)
            assert [e.seq for e in events] == [1, 2, 3]
            assert events[-1].kind == "done" and "host:1:1:1" in events[-1].json()["reason"]
            got = await stores[1].get(run.id)
            assert got is not None and got.state == "interrupted"
        back = await stores[1].get(queued.id)
        assert back is not None and back.state == "queued" and back.owner == ""
        assert await stores[1].pool.fetchval("SELECT count(*) FROM locks") == 0
        assert await stores[1].pool.fetchval("SELECT count(*) FROM replicas WHERE owner = $1",
                                             dead.owner) == 0  # fmt: skip
        claimed = await peers[0].claim(5)
        assert [r.id for r in claimed] == [queued.id] and claimed[0].owner == peers[0].owner
    finally:
        for s in stores:
            await s.close()


async def test_only_batches_of_a_watched_run_ring_the_doorbell(pg_database):
    """A batch rings `runner_events` (id:last seq) once another replica watches its run;
    before that, no replica has a doorbell to read and drop."""
    store = PostgresStore(pg_database)
    await store.open()
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await store.connect()
    await listener.add_listener("runner_events", lambda *args: heard.put_nowait(args[-1]))
    try:
        run = _run(1, time.time(), "running")
        run.last_event = 2
        await store.write([run], [Event(run.id, s, "output", "x", 1.0) for s in (1, 2)])
        await store.watch(run.id)
        run.last_event = 4
        await store.write([run], [Event(run.id, s, "output", "x", 1.0) for s in (3, 4)])
        assert await asyncio.wait_for(heard.get(), 5) == f"{run.id}:4"
        assert heard.empty()
    finally:
        await listener.close()
        await store.close()

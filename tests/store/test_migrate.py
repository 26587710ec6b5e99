"""``runner store migrate``: a SQLite history copied into PostgreSQL, then served by a
replica that takes over what the stopped SQLite server left."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from ulid import ULID

from runner.records import Claim, Event, Notice, RunRecord
from runner.store import SQLiteStore
from runner.store.migrate import migrate
from runner.store.postgres import PostgresStore
from tests.conftest import ROOT, wait_final

pytestmark = pytest.mark.anyio


def _run(i: int, state: str, job: str = "py/echo") -> RunRecord:
    now = time.time() - 100 + i
    return RunRecord(
        id=str(ULID.from_timestamp(now)), job=job, state=state, params={"rg": f"r{i}"},
        caller="user:al", created=now, timeout=60, owner="gone-host:1:1:1",
    )  # fmt: skip


def _migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "store", "migrate", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip


async def test_a_sqlite_history_moves_to_postgresql_whole_and_once(
    tmp_path, pg_database, serve_process
):
    """Runs with bodies, events, claims and notices arrive as they were; a second migrate
    copies nothing twice; a replica then interrupts the run the old server was running
    and runs the one it had queued."""
    source = SQLiteStore(tmp_path / "old" / "runner.db")
    await source.open()
    done = [_run(i, "succeeded") for i in range(30)]
    running, queued = _run(40, "running"), _run(41, "queued")
    queued.body = b"kept body"
    runs = [*done, running, queued]
    events = []
    for run in runs:
        run.last_event = 3
        events += [Event(run.id, s, "output", f"{run.id} line {s}", 1.0) for s in (1, 2, 3)]
    await source.write(runs, events)
    await source.claim(Claim("delivery:x", done[0].id, "fp", "o", time.time()), ttl=60)
    now = time.time()
    await source.outbox_add([Notice("n1", done[0].id, "webhook", "https://x.test", "{}", now,
                                    now + 60, now)])  # fmt: skip
    await source.close()

    first = await migrate(tmp_path / "old" / "runner.db", PostgresStore(pg_database))
    assert str(first) == (
        "copied 32 runs (96 events), 1 claims and 1 notices; 0 runs were there already"
    )
    again = _migrate("--from", f"sqlite:{tmp_path / 'old' / 'runner.db'}", "--to", pg_database)
    assert again.returncode == 0 and "32 runs were there already" in again.stdout

    target = PostgresStore(pg_database)
    await target.open()
    try:
        for run in runs:
            got = await target.get(run.id)
            assert got is not None and got.to_json() == run.to_json()
            assert [e.data for e in await target.events(run.id)] == [
                f"{run.id} line {s}" for s in (1, 2, 3)
            ]
        assert await target.body(queued.id) == b"kept body"
        assert (await target.notices(done[0].id))[0].id == "n1"
        held = await target.claim(Claim("delivery:x", "other", "fp", "o", time.time()), ttl=60)
        assert held.run_id == done[0].id
    finally:
        await target.close()

    srv = serve_process(tmp_path / "replica", env={"RUNNER_STORE": pg_database})
    with srv.client() as c:
        interrupted = wait_final(c, running.id)
        assert interrupted["state"] == "interrupted"
        assert wait_final(c, queued.id)["state"] == "succeeded"
        assert "rg=r41" in c.get(f"/_runs/{queued.id}/log").text
        events = c.get(f"/_runs/{running.id}/events").text
        assert events.count("event: done") == 1 and "id: 4" in events


def test_migrate_says_what_it_needs(tmp_path):
    out = _migrate("--from", f"sqlite:{tmp_path / 'none.db'}", "--to", "postgresql://u@/db")
    assert out.returncode == 2 and "no SQLite store at" in out.stderr
    out = _migrate("--from", "mysql://x", "--to", "postgresql://u@/db")
    assert out.returncode == 2 and "--from must be sqlite:PATH" in out.stderr

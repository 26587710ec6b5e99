"""The executor in the test's own event loop (with tests/test_locks.py): what a run's
events say about it, what the log says about each run, and what a restart does with
the runs a stopped process left in the store."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from runner import lease
from runner.catalogue import Catalogue
from runner.execution import label
from runner.records import EV_DONE, EV_RUN, QUEUED, RUNNING, Event, RunRecord, new_run_id
from runner.runtime import Runtime
from tests.conftest import make_settings
from tests.faults import Disk
from tests.test_locks import JOB, WAIT, Floor, ended, submit, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def runner(tmp_path: Path):
    """Factory: a started runtime serving the work job, on a store holding ``left``
    (runs a stopped process left) first."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "work.py").write_text(JOB)
    started: list[Runtime] = []

    async def make(left: Sequence[RunRecord] = (), **limits: Any) -> Runtime:
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        if left:
            store = Disk(state / "runs.db")
            await store.open()
            first = [Event(r.id, 1, EV_RUN, json.dumps({"id": r.id}), r.created) for r in left]
            await store.write(list(left), first)
            await store.close()
        settings = make_settings(state, jobs=(jobs,), **limits)
        floor = Floor()
        rt = Runtime(settings, Catalogue.discover((jobs,)), Disk(state / "runs.db"), [floor])
        rt.floor = floor  # type: ignore[attr-defined]
        await rt.start()
        started.append(rt)
        return rt

    yield make
    for rt in started:
        for name, ending in rt.floor._endings.items():  # type: ignore[attr-defined]
            if not ending.done():
                rt.floor.end(name, "hang")  # type: ignore[attr-defined]
        await asyncio.wait_for(rt.stop(), WAIT)


async def events(rt: Runtime, run: RunRecord, kind: str) -> list[dict[str, Any]]:
    await rt.journal.sync()
    return [json.loads(e.data) for e in await rt.store.events(run.id) if e.kind == kind]


async def test_a_runs_events_say_what_it_is_and_how_it_ended(runner):
    """The first event names the run, its job, parameters, limit and links; the last
    says how it ended, with its exit code, duration and why, as the record does."""
    rt = await runner()
    floor = rt.floor
    before = time.time()
    runs = {name: await submit(rt, name, key=name) for name in ("ok", "three", "boom")}
    for name, how in (("ok", "succeed"), ("three", "exit 3"), ("boom", "fail")):
        floor.end(name, how)
    expected = {
        "ok": ("succeeded", 0, None),
        "three": ("failed", 3, "exited with code 3"),
        "boom": ("failed", 1, "RuntimeError: told to fail"),
    }
    for name, run in runs.items():
        stored = await ended(rt, run)
        assert (await events(rt, run, EV_RUN)) == [
            {
                "id": run.id,
                "job": "work",
                "state": QUEUED,
                "params": {"name": name, "key": name},
                "timeout": stored.timeout,
                "links": run.links(),
            }
        ]
        state, code, reason = expected[name]
        assert (stored.state, stored.exit_code, stored.reason) == (state, code, reason)
        assert before <= stored.created <= stored.started <= stored.finished <= time.time()
        done = {"state": state, "exit_code": code, "duration": stored.duration, "reason": reason}
        assert (await events(rt, run, EV_DONE)) == [done]


async def test_the_log_says_when_each_run_waits_starts_and_ends(runner, caplog):
    """One line each when a run waits, starts and ends (how long, how, why), each with
    the run's id and what happened, for log search; a job that raises is a warning."""
    caplog.set_level(logging.INFO, logger="runner")
    rt = await runner()
    floor = rt.floor
    first = await submit(rt, "first")
    second = await submit(rt, "second")  # waits for the key
    await until(lambda: "first" in floor.holding)
    floor.end("first", "exit 3")
    floor.end("second", "fail")
    stored = [await ended(rt, run) for run in (first, second)]
    lines = [
        (r.levelname, r.getMessage(), r.run_id, r.event, getattr(r, "duration", None))  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "runner.runs" and getattr(r, "event", None)
    ]
    one, two = (label(run) for run in stored)
    done = [f"{r.duration:.3f}s {label(r)} failed ({r.reason})" for r in stored]
    assert lines == [
        ("INFO", f"{one} started", first.id, "started", None),
        ("INFO", f"{two} queued", second.id, "queued", None),
        ("INFO", done[0], first.id, "failed", stored[0].duration),
        ("INFO", f"{two} started", second.id, "started", None),
        ("INFO", done[1], second.id, "failed", stored[1].duration),
    ]
    raised = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert raised == [f"{two} raised RuntimeError: told to fail"]
    assert [r.run_id for r in caplog.records if r.levelname == "WARNING"] == [second.id]  # type: ignore[attr-defined]


def left_run(name: str, state: str, owner: str, job: str = "work", age: float = 0) -> RunRecord:
    now = time.time() - 100 + age
    return RunRecord(
        new_run_id(),
        job,
        state,
        {"name": name, "key": "k"},
        "user:alice",
        now,
        60,
        lock_key="key:k",
        started=now + 1 if state == RUNNING else None,
        last_event=1,
        owner=owner,
    )


async def test_a_restart_takes_over_what_a_stopped_process_left(runner, caplog):
    """Runs a stopped process left running are recorded as interrupted, saying why; its
    queued runs run here, oldest first — or are interrupted when their job is gone. Runs
    of a process still alive (a `runner run` in a terminal) are left to it."""
    caplog.set_level(logging.INFO, logger="runner")
    gone, live = "elsewhere:1:2:3", lease.claim()
    try:
        left = [
            left_run("crashed", RUNNING, gone, age=1),
            left_run("theirs", RUNNING, live, age=2),
            left_run("crashed too", RUNNING, gone, age=3),
            left_run("older", QUEUED, gone, age=4),
            left_run("their queued", QUEUED, live, age=5),
            left_run("removed", QUEUED, gone, job="nosuch", age=6),
            left_run("newer", QUEUED, gone, age=7),
        ]
        rt = await runner(left)
    finally:
        lease.release(live)
    floor = rt.floor
    await until(lambda: "older" in floor.holding)
    floor.end("older")
    await until(lambda: "newer" in floor.holding)
    floor.end("newer")
    for run in (left[3], left[6]):
        stored = await ended(rt, run)
        assert (stored.state, stored.owner) == ("succeeded", rt.executor.owner)
    assert floor.started == ["older", "newer"]
    why = "the runner process stopped while this run was running"
    for run, reason in ((left[0], why), (left[2], why), (left[5], "job /nosuch no longer exists")):
        stored = await ended(rt, run)
        assert (stored.state, stored.reason, stored.exit_code) == ("interrupted", reason, None)
        assert stored.finished is not None and stored.finished >= stored.created
        duration = stored.duration if run.started is not None else None
        done = {"state": "interrupted", "exit_code": None, "duration": duration, "reason": reason}
        assert (await events(rt, run, EV_DONE)) == [done]
    for run in (left[1], left[4]):
        stored = await rt.store.get(run.id)
        assert stored is not None and (stored.state, stored.owner) == (run.state, live)
    noted = [(r.getMessage(), r.run_id) for r in caplog.records if hasattr(r, "run_id")]  # type: ignore[attr-defined]
    assert (f"{label(left[0])} interrupted", left[0].id) in noted
    assert (f"{label(left[3])} queued again after restart", left[3].id) in noted

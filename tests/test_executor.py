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
from runner.execution import label
from runner.records import (
    EV_DONE,
    EV_RUN,
    QUEUED,
    RUNNING,
    Event,
    RunRecord,
    Trigger,
    new_run_id,
)
from runner.runtime import Runtime
from runner.service import StartRequest
from tests.faults import Disk
from tests.test_locks import (
    ALICE,
    JOB,
    WAIT,
    ended,
    start_floor,
    stop_floor,
    submit,
    turns,
    until,
)

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
        rt = await start_floor(state, jobs, **limits)
        started.append(rt)
        return rt

    yield make
    for rt in started:
        if not getattr(rt, "stopped", False):
            await stop_floor(rt)


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
    runs["quit"] = await submit(rt, "quit", key="quit")
    for name, how in (
        ("ok", "succeed"),
        ("three", "exit 3"),
        ("boom", "fail"),
        ("quit", "give up"),
    ):
        floor.end(name, how)
    expected = {
        "ok": ("succeeded", 0, None),
        "three": ("failed", 3, "exited with code 3"),
        "boom": ("failed", 1, "RuntimeError: told to fail"),
        "quit": ("cancelled", 130, "cancelled"),
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
    floor.end("fine")
    fine = await ended(rt, await submit(rt, "fine"))
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
        ("INFO", f"{label(fine)} started", fine.id, "started", None),
        (
            "INFO",
            f"{fine.duration:.3f}s {label(fine)} succeeded",
            fine.id,
            "succeeded",
            fine.duration,
        ),
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


async def test_a_run_shown_before_its_record_is_stored_starts_only_once_it_is(runner):
    """A run whose id is shown at once (text mode) does not act before its record is on
    disk: a crash can never leave a job that acted without a record of its run."""
    rt = await runner()
    rt.store.hold()
    params = {"name": "eager", "key": "k"}
    started = await rt.runs.start(StartRequest("work", params, ALICE, durable=False))
    await rt.store.until_parked()
    await turns()
    assert rt.floor.started == []
    assert (await rt.runs.get(started.run.id, ALICE)).state == RUNNING  # shown, not stored
    rt.store.free()
    await until(lambda: rt.floor.started == ["eager"])
    assert await rt.store.get(started.run.id) is not None
    rt.floor.end("eager")
    await ended(rt, started.run)


async def test_a_run_past_its_output_limit_or_its_time_fails_saying_so(runner):
    """Too much output or too long: the run fails or times out, and its record says why."""
    rt = await runner(max_output_bytes=12)
    loud = await submit(rt, "loudmouth")  # prints "loudmouth holds k": 17 bytes
    slow = await submit(rt, "slow", key="j", timeout="0.2")  # "slow holds j": 12 bytes
    rt.floor.end("slow", "hang")
    stored = await ended(rt, loud)
    assert (stored.state, stored.exit_code) == ("failed", 1)
    assert stored.reason.startswith("the run wrote more than its output limit of 12 bytes")
    stored = await ended(rt, slow)
    assert (stored.state, stored.reason) == ("timed_out", "timed out after 0.2 s")


async def test_a_run_records_where_it_came_from_and_who_holds_it(runner):
    """The stored record keeps the run's trigger (what a hook answers back to) and the
    lease of the process running it (what a restart checks)."""
    rt = await runner()
    came = Trigger("github", delivery_id="d-1", event="push", address="127.0.0.1")
    params = {"name": "hooked", "key": "k"}
    run = (await rt.runs.start(StartRequest("work", params, ALICE, trigger=came))).run
    rt.floor.end("hooked")
    stored = await ended(rt, run)
    assert (stored.trigger, stored.owner) == (came, rt.executor.owner)


async def test_a_run_cancelled_while_queued_never_ran(runner):
    """Its last event says it was cancelled by request and ran for no time."""
    rt = await runner()
    await submit(rt, "first")
    queued = await submit(rt, "second")
    await rt.runs.cancel(queued.id, ALICE)
    done = {
        "state": "cancelled",
        "exit_code": 130,
        "duration": 0.0,
        "reason": "cancelled by request",
    }
    assert (await events(rt, queued, EV_DONE)) == [done]
    rt.floor.end("first")


async def test_a_run_is_shown_as_it_is_now_before_the_store_has_it(runner):
    """Asked about a run it holds, the runner answers from memory: a run that started
    says so while its record is still being written — and its job acts only once the
    store says `running` too (a run the store has as queued never began)."""
    rt = await runner()
    await submit(rt, "first")
    await until(lambda: "first" in rt.floor.holding)
    rt.store.hold()
    waiting = StartRequest("work", {"name": "second", "key": "k"}, ALICE, durable=False)
    second = (await rt.runs.start(waiting)).run
    assert (await rt.runs.get(second.id, ALICE)).state == QUEUED  # not stored yet
    rt.store.free()
    await rt.journal.sync()
    rt.store.hold()
    rt.floor.end("first")
    await until(lambda: second.id in rt.executor.running)
    assert (await rt.runs.get(second.id, ALICE)).state == RUNNING
    assert (await rt.store.get(second.id)).state == QUEUED
    await asyncio.sleep(0.1)
    assert "second" not in rt.floor.holding  # its job waits for the store
    rt.store.free()
    await until(lambda: "second" in rt.floor.holding)
    assert (await rt.store.get(second.id)).state == RUNNING
    rt.floor.end("second")
    await ended(rt, second)
    assert (await rt.runs.get(second.id, ALICE)).state == "succeeded"  # from the store


async def test_runs_left_queued_by_a_stopped_runner_run_at_its_next_start(runner):
    """Stopping a runner (``async with Runtime``, without a drain first) cancels what
    runs and starts nothing queued; the same process starting it again takes over the
    queued runs: the stopped one gave its lease back."""
    first = await runner(max_running=1)
    await submit(first, "running", key="a")
    queued = await submit(first, "queued", key="b")
    await until(lambda: "running" in first.floor.holding)
    await asyncio.wait_for(first.stop(), WAIT)
    first.stopped = True
    assert first.floor.started == ["running"]  # its end started nothing on the way out
    second = await runner()
    await until(lambda: second.floor.started == ["queued"])
    second.floor.end("queued")
    assert (await ended(second, queued)).state == "succeeded"


async def test_a_restart_takes_over_every_run_left_however_many(runner):
    """More runs left than a page of the history: every one is taken over."""
    gone = "elsewhere:1:2:3"
    running = [left_run(f"r{i}", RUNNING, gone, age=i / 1000) for i in range(51)]
    queued = [left_run(f"q{i}", QUEUED, gone, job="nosuch", age=i / 1000) for i in range(51)]
    rt = await runner([*running, *queued])
    for run in running + queued:
        stored = await rt.store.get(run.id)
        assert stored is not None and stored.state == "interrupted"


async def test_a_job_that_outlives_its_run_adds_nothing_to_its_log(runner, caplog):
    """A job that ignored its cancellation and was given up on may still print: nothing
    of it comes after the run's `done`, and the log says it was dropped."""
    rt = await runner(kill_grace=0.01)
    run = await submit(rt, "stubborn")
    rt.floor.end("stubborn", "stubborn")
    await until(lambda: "stubborn" in rt.floor.pokes)
    await rt.runs.cancel(run.id, ALICE)
    await ended(rt, run)
    rt.floor.pokes["stubborn"].set()
    await until(lambda: not rt.floor.pokes["stubborn"].is_set())
    await rt.journal.sync()
    assert (await rt.store.events(run.id))[-1].kind == EV_DONE
    assert any("output after the run ended" in r.getMessage() for r in caplog.records)


async def test_a_short_run_costs_two_transactions_its_start_and_its_output_with_its_end(runner):
    """A job that prints a line and returns, started as text mode starts it: its record
    and `running` in one commit (the job acts only after it), its line and its `done` in
    the next one — not one each."""
    rt = await runner()
    rt.floor.end("quick")
    await rt.journal.sync()
    before = rt.store.writes
    run = await submit(rt, "quick", durable=False)  # as text mode starts it
    stored = await ended(rt, run)
    assert stored.state == "succeeded"
    assert [e.kind for e in await rt.store.events(run.id)] == ["run", "status", "output", "done"]
    assert rt.store.writes - before == 2

"""Lock keys and slots, in the test's own event loop: the real Runs service, executor and
journal on a real SQLite store, with a Python job that works until the test says how it
ends. Two runs with one lock key never overlap; a queued run waits for its key, in
arrival order; the key is given back on every ending."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.auth.principal import Principal
from runner.catalogue import Catalogue
from runner.errors import Busy, Conflict, Draining, NotFound, StoreError
from runner.hooks import Extension
from runner.records import EV_DONE, EV_STATUS, RunRecord
from runner.runtime import Runtime
from runner.service import StartRequest
from tests.conftest import make_settings
from tests.faults import Disk

pytestmark = pytest.mark.anyio

WAIT = 10  # seconds before what must happen is called a hang
ALICE = Principal("user", "alice")

JOB = '''"""Work under a lock key until the test says how it ends (tests/test_locks.py)."""

from runner import Context

LOCK = "key:{key}"


async def run(ctx: Context, name: str, key: str = "k") -> int | None:
    floor = await ctx.resource("floor")
    return await floor.work(ctx, name, key)
'''


class Floor(Extension):
    """What the jobs work on: who holds which key now, in which order they started, any
    overlap of one key, and how each job ends — as the test says (``end``)."""

    name = "floor"

    def __init__(self) -> None:
        self.holding: dict[str, str] = {}  # job name -> its key, while its job runs
        self.started: list[str] = []
        self.overlaps: list[tuple[str, str, str]] = []
        self._endings: dict[str, asyncio.Future[str]] = {}
        self.pokes: dict[str, asyncio.Event] = {}  # a stubborn job prints when poked

    async def lend(self, ctx: Any) -> Floor:
        return self

    def _ending(self, name: str) -> asyncio.Future[str]:
        if name not in self._endings:
            self._endings[name] = asyncio.get_running_loop().create_future()
        return self._endings[name]

    def end(self, name: str, how: str = "succeed") -> None:
        """succeed, fail (raise), exit N (return N), hang (until cancelled), or stubborn
        (ignore cancels)."""
        self._ending(name).set_result(how)

    async def work(self, ctx: Any, name: str, key: str) -> int | None:
        self.overlaps += [(other, name, key) for other, k in self.holding.items() if k == key]
        self.holding[name] = key
        self.started.append(name)
        ctx.print(f"{name} holds {key}")
        try:
            how = await self._ending(name)
            if how == "fail":
                raise RuntimeError("told to fail")
            if how == "give up":  # the job's own code cancels itself
                raise asyncio.CancelledError
            if how.startswith("exit "):
                return int(how.removeprefix("exit "))
            if how == "hang":
                await asyncio.Event().wait()
            while how == "stubborn":
                try:
                    poke = self.pokes.setdefault(name, asyncio.Event())
                    await poke.wait()
                    poke.clear()
                    ctx.print(f"{name} still going")
                except asyncio.CancelledError:
                    ctx.print("ignoring the cancellation")
        finally:
            self.holding.pop(name, None)
        return None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def start_floor(state: Path, jobs: Path, **limits: Any) -> Runtime:
    """A started runtime on ``state`` serving the work job, its Floor as ``rt.floor``."""
    settings = make_settings(state, jobs=(jobs,), **limits)
    floor = Floor()
    rt = Runtime(settings, Catalogue.discover((jobs,)), Disk(state / "runs.db"), [floor])
    rt.floor = floor  # type: ignore[attr-defined]
    await rt.start()
    return rt


async def stop_floor(rt: Runtime) -> None:
    """Stop a runtime of :func:`start_floor`; jobs still waiting for their ending hang
    (so that stopping cancels them)."""
    for name, ending in rt.floor._endings.items():  # type: ignore[attr-defined]
        if not ending.done():
            rt.floor.end(name, "hang")  # type: ignore[attr-defined]
    await asyncio.wait_for(rt.stop(), WAIT)


@pytest.fixture
async def runner(tmp_path: Path):
    """Factory: a started runtime serving the work job, with the limits given."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "work.py").write_text(JOB)
    started: list[Runtime] = []

    async def make(**limits: Any) -> Runtime:
        rt = await start_floor(tmp_path / f"state{len(started)}", jobs, **limits)
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await stop_floor(rt)


async def submit(rt: Runtime, name: str, key: str = "k", **kw: Any) -> RunRecord:
    params = {"name": name, "key": key}
    return (await rt.runs.start(StartRequest("work", params, ALICE, **kw))).run


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - a condition no event signals
            await asyncio.sleep(0.005)


async def turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def ended(rt: Runtime, run: RunRecord) -> RunRecord:
    """The run's stored record once it has ended (its `done` is committed)."""
    async with asyncio.timeout(WAIT):
        async for batch in rt.journal.follow(run.id):
            if batch and batch[-1].kind == EV_DONE:
                break
    stored = await rt.store.get(run.id)
    assert stored is not None
    return stored


async def statuses(rt: Runtime, run: RunRecord) -> list[dict[str, Any]]:
    await rt.journal.sync()
    return [json.loads(e.data) for e in await rt.store.events(run.id) if e.kind == EV_STATUS]


ENDINGS = {
    "succeed": "succeeded",
    "fail": "failed",
    "cancel": "cancelled",
    "timeout": "timed_out",
    "abandon": "cancelled",
}


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_a_queued_run_gets_the_key_once_its_holder_ends_however_it_ends(runner, ending):
    """Runs sharing a key run one at a time, in arrival order; another key runs alongside;
    the key passes on when its holder succeeds, fails, is cancelled, times out, or is
    abandoned because it would not stop."""
    rt = await runner(kill_grace=0.01)
    floor = rt.floor
    first = await submit(rt, "first", timeout="0.3" if ending == "timeout" else None)
    await until(lambda: "first" in floor.holding)
    second = await submit(rt, "second")
    third = await submit(rt, "third")
    other = await submit(rt, "other", key="j")
    await until(lambda: "other" in floor.holding)
    await turns()
    assert "second" not in floor.holding and "third" not in floor.holding
    waiting = {"state": "queued", "message": "waiting for lock key:k"}
    assert (await statuses(rt, second))[-1] == waiting
    if ending in ("succeed", "fail"):
        floor.end("first", ending)
    elif ending == "abandon":
        floor.end("first", "stubborn")
    if ending in ("cancel", "abandon"):
        await rt.runs.cancel(first.id, ALICE)
    assert (await ended(rt, first)).state == ENDINGS[ending]
    await until(lambda: "second" in floor.holding)
    await turns()
    assert "third" not in floor.holding
    floor.end("second")
    await until(lambda: "third" in floor.holding)
    floor.end("third")
    floor.end("other")
    for run in (second, third, other):
        assert (await ended(rt, run)).state == "succeeded"
    assert floor.started == ["first", "other", "second", "third"]
    # An abandoned job may still run: its key was given up so that others are not stuck.
    abandoned = [("first", "second", "k"), ("first", "third", "k")]
    assert floor.overlaps == (abandoned if ending == "abandon" else [])


async def test_cancelling_a_queued_run_gives_up_no_key_it_did_not_hold(runner):
    """A queued run cancelled while another holds its key: the key stays held."""
    rt = await runner()
    floor = rt.floor
    await submit(rt, "first")
    await until(lambda: "first" in floor.holding)
    second = await submit(rt, "second")
    await submit(rt, "third")
    assert (await rt.runs.cancel(second.id, ALICE)).state == "cancelled"
    await turns()
    assert "third" not in floor.holding
    floor.end("first")
    await until(lambda: "third" in floor.holding)
    floor.end("third")
    stored = await ended(rt, second)
    assert (stored.state, stored.reason, stored.exit_code) == (
        "cancelled",
        "cancelled by request",
        130,
    )
    assert floor.started == ["first", "third"] and floor.overlaps == []


async def test_a_run_waiting_for_its_key_holds_up_no_other_key(runner):
    """A run queued behind a held key does not block runs behind it with free keys."""
    rt = await runner(max_running=3)
    floor = rt.floor
    await submit(rt, "first")
    await until(lambda: "first" in floor.holding)
    await submit(rt, "second")
    await submit(rt, "free", key="j")
    await until(lambda: "free" in floor.holding)
    floor.end("free")
    await until(lambda: "free" not in floor.holding)
    await submit(rt, "later", key="m")
    await until(lambda: "later" in floor.holding)
    assert "second" not in floor.holding
    for name in ("first", "second", "later"):
        floor.end(name)
    await until(lambda: floor.started[-1] == "second" and not floor.holding)
    assert floor.overlaps == []


async def test_a_run_waits_for_a_free_slot_and_says_so(runner):
    """With every slot taken, a run waits, says why, and starts when a slot frees; the
    oldest waiting run goes first."""
    rt = await runner(max_running=1)
    floor = rt.floor
    await submit(rt, "a", key="x")
    await until(lambda: "a" in floor.holding)
    b = await submit(rt, "b", key="y")
    await submit(rt, "c", key="z")
    await turns()
    assert list(floor.holding) == ["a"]
    waiting = {"state": "queued", "message": "waiting for a free slot (1 runs at once)"}
    assert (await statuses(rt, b))[-1] == waiting
    floor.end("a")
    await until(lambda: "b" in floor.holding)
    await turns()
    assert list(floor.holding) == ["b"]
    floor.end("b")
    await until(lambda: "c" in floor.holding)
    floor.end("c")
    await until(lambda: not floor.holding)
    assert floor.started == ["a", "b", "c"]


async def test_a_full_queue_refuses_only_runs_that_would_have_to_wait(runner):
    """A run that can start at once is taken even with the queue full; one that would
    wait (for its key, though a slot is free, or for a slot) is refused with a retry
    time."""
    rt = await runner(max_running=2, max_queued=3)
    floor = rt.floor
    await submit(rt, "a")
    await until(lambda: "a" in floor.holding)
    for name in ("b", "c", "d"):
        await submit(rt, name)
    for name, key in (("f", "k"), ("e", "j"), ("g", "m")):
        if name == "e":  # a free slot and a free key: taken
            await submit(rt, name, key=key)
            await until(lambda: "e" in floor.holding)
            continue
        with pytest.raises(Busy) as refused:
            await submit(rt, name, key=key)
        # no run has ended yet: a run is reckoned at 1 s, 4 of them for 2 slots
        assert refused.value.retry_after == 2
        assert str(refused.value) == "3 runs are already waiting (limit 3); retry in 2 s"
    assert len((await rt.runs.list_runs(ALICE)).runs) == 5
    for name in "abcde":
        floor.end(name)
    await until(lambda: floor.started[-1] == "d" and not floor.holding)


async def busy(rt: Runtime, name: str) -> Busy:
    with pytest.raises(Busy) as refused:
        await submit(rt, name, key=name)
    return refused.value


async def test_the_retry_time_follows_how_long_runs_take(runner):
    """A refused caller is told to retry after the time the runs ahead of it should take
    (a run is reckoned at 1 s until runs have ended, then at what they took), never
    sooner than 1 s nor later than a minute."""
    rt = await runner(max_running=1, max_queued=3)
    floor = rt.floor
    for name in "abcd":
        await submit(rt, name, key=name)
    assert (await busy(rt, "x")).retry_after == 4  # 4 runs of 1 s ahead, 1 slot
    for name in "abcd":
        floor.end(name)
    await until(lambda: not floor.holding and floor.started[-1] == "d")
    for i in range(20):  # runs that end at once: the reckoning falls to 1 s in all
        floor.end(f"q{i}")
        await ended(rt, await submit(rt, f"q{i}", key="q"))
    for name in "efgh":
        await submit(rt, name, key=name)
    assert (await busy(rt, "y")).retry_after == 1
    for name in "efgh":
        floor.end(name)
    await until(lambda: not floor.holding and floor.started[-1] == "h")


async def test_a_long_queue_is_told_to_retry_within_a_minute(runner):
    """However long the queue, a refused caller is told to come back within a minute."""
    rt = await runner(max_running=1, max_queued=60)
    floor = rt.floor
    names = [f"r{i}" for i in range(61)]
    for name in names:
        await submit(rt, name, key=name)
    assert (await busy(rt, "x")).retry_after == 60  # 61 runs of 1 s ahead
    for name in names:
        floor.end(name)
    await until(lambda: not floor.holding and len(floor.started) == 61)


async def test_a_run_is_shown_only_once_stored_and_a_refused_one_never_is(runner):
    """The caller gets a run's id only once its record is on disk; a run refused because
    the store failed is not written later, when it heals, and holds no key."""
    rt = await runner()
    disk = rt.store
    disk.hold()
    starting = asyncio.create_task(submit(rt, "shown"))
    await disk.until_parked()
    await turns()
    assert not starting.done()
    disk.free()
    shown = await asyncio.wait_for(starting, WAIT)
    assert await disk.get(shown.id) is not None
    rt.floor.end("shown")
    await ended(rt, shown)
    disk.broken = "disk full (simulated)"
    with pytest.raises(StoreError):
        await submit(rt, "refused")
    disk.broken = None
    await asyncio.wait_for(rt.journal.sync(), WAIT)
    await until(lambda: not rt.journal.failing)
    assert [r.id for r in (await rt.runs.list_runs(ALICE)).runs] == [shown.id]
    rt.floor.end("after")
    await ended(rt, await submit(rt, "after"))  # the key k is free
    assert rt.floor.started == ["shown", "after"]


async def test_a_draining_runner_takes_no_run_and_starts_no_queued_one(runner, caplog):
    """SIGTERM: new runs are refused, running ones finish, queued ones stay queued in the
    store for the next start, even once a slot is free; the log says what it waits for."""
    caplog.set_level(logging.INFO, logger="runner")
    rt = await runner(max_running=1)
    floor = rt.floor
    first = await submit(rt, "first")
    await until(lambda: "first" in floor.holding)
    queued = await submit(rt, "queued", key="j")
    draining = asyncio.create_task(rt.executor.drain(WAIT))
    await turns()
    with pytest.raises(Draining) as refused:
        await submit(rt, "late", key="m")
    assert refused.value.retry_after == 5  # by then another replica has it
    floor.end("first")
    await asyncio.wait_for(draining, WAIT)
    assert (await rt.store.get(first.id)).state == "succeeded"
    assert (await rt.store.get(queued.id)).state == "queued"
    assert floor.started == ["first"]
    assert "draining: 1 running, 1 queued" in [r.getMessage() for r in caplog.records]


async def test_a_drain_cancels_what_outlives_its_deadline(runner):
    """A run still going at the drain's deadline is cancelled and recorded as such."""
    rt = await runner()
    floor = rt.floor
    run = await submit(rt, "slow")
    await until(lambda: "slow" in floor.holding)
    await asyncio.wait_for(rt.executor.drain(0.05), WAIT)
    stored = await rt.store.get(run.id)
    assert stored.state == "cancelled"
    assert stored.reason == "the runner shut down before the run finished (0.05 s drain)"


async def test_a_second_signal_ends_the_drain_at_once(runner):
    """hurry() (a second SIGTERM) stops waiting for running runs: they are cancelled."""
    rt = await runner()
    floor = rt.floor
    run = await submit(rt, "slow")
    await until(lambda: "slow" in floor.holding)
    draining = asyncio.create_task(rt.executor.drain(3600))
    await turns()
    rt.executor.hurry()
    await asyncio.wait_for(draining, WAIT)
    assert (await rt.store.get(run.id)).state == "cancelled"


async def test_stopping_the_runner_records_its_running_runs_as_cancelled(runner):
    """Runtime.stop cancels what still runs and records why."""
    rt = await runner()
    floor = rt.floor
    run = await submit(rt, "slow")
    await until(lambda: "slow" in floor.holding)
    await rt.executor.close()
    stored = await rt.store.get(run.id)
    assert (stored.state, stored.reason) == ("cancelled", "the runner stopped")


async def test_cancel_tells_an_unknown_an_ended_and_a_foreign_run_apart(runner):
    """Cancelling a run that is not there, has ended, or runs in another process says so."""
    rt = await runner()
    floor = rt.floor
    with pytest.raises(NotFound):
        await rt.executor.cancel("01NOSUCHRUN0000000000000000")
    run = await submit(rt, "quick")
    floor.end("quick")
    await ended(rt, run)
    with pytest.raises(Conflict, match="already ended: succeeded"):
        await rt.executor.cancel(run.id)
    stored = await rt.store.get(run.id)
    stored.state = "running"
    await rt.store.write([stored], [])
    with pytest.raises(Conflict, match="not handled by this runner process"):
        await rt.executor.cancel(run.id)

"""The journal in the test's own event loop, on a real SQLite store that the test can hold
and break (tests/faults.py ``Disk``): a line is on disk before anyone sees it, ``sync()``
never calls unsaved lines saved, nothing is lost or written twice while the store fails,
and every follower gets every line once — live, behind, or from another process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import StoreError
from runner.hooks import Extension, Extensions
from runner.journal import PAGE, PENDING_HARD, PENDING_SOFT, RING, RING_BYTES, Journal
from runner.records import (
    EV_DONE,
    EV_OUTPUT,
    EV_RUN,
    EV_STATUS,
    QUEUED,
    RUNNING,
    RUNNING_STATUS,
    SUCCEEDED,
    Event,
    RunRecord,
    new_run_id,
)
from tests.faults import Disk

pytestmark = pytest.mark.anyio

WAIT = 5  # seconds a test waits for what must happen before it calls it a hang


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def disk(tmp_path: Path):
    store = Disk(tmp_path / "runs.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def journal_of(disk: Disk):
    """Factory: a journal on ``disk`` (or another store). At the end the store heals and
    everything pending is written, so that no flush is left running."""
    made: list[Journal] = []

    def make(store: object = None, extensions: Extensions | None = None) -> Journal:
        journal = Journal(store or disk, extensions)  # type: ignore[arg-type]
        made.append(journal)
        return journal

    yield make
    disk.broken = None
    disk.free()
    for journal in made:
        await asyncio.wait_for(journal.sync(), WAIT)
        await until(lambda j=journal: not j.failing)
    await turns()


def new_run() -> RunRecord:
    return RunRecord(new_run_id(), "a/b", QUEUED, {}, "user:a", time.time(), 60)


def start(journal: Journal, run: RunRecord | None = None) -> RunRecord:
    """A run as the executor submits and starts it: tracked, its first event, and held
    (its job waits in ``recorded`` until that is stored)."""
    run = run or new_run()
    journal.open(run)
    journal.emit(run, EV_RUN, json.dumps({"id": run.id, "state": run.state}))
    journal.hold(run.id)
    return run


def finish(journal: Journal, run: RunRecord) -> None:
    run.state, run.finished = SUCCEEDED, time.time()
    journal.emit(run, EV_DONE, json.dumps({"state": SUCCEEDED, "exit_code": 0}))


async def write_in_flight(journal: Journal, disk: Disk) -> RunRecord:
    """A started run, stored, whose next write (its line "in flight") the disk holds."""
    run = start(journal)
    await journal.sync()
    disk.hold()
    journal.emit(run, EV_OUTPUT, "in flight")
    await disk.until_parked()
    return run


async def turns(n: int = 10) -> None:
    """Let the loop run ``n`` times: whatever was ready has had its go."""
    for _ in range(n):
        await asyncio.sleep(0)


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - a condition no event signals
            await asyncio.sleep(0.005)


async def follow_all(
    journal: Journal, run_id: str, after: int = 0, into: list[Event] | None = None
) -> list[Event]:
    """Every event a follower gets, until the journal ends the stream."""
    got = [] if into is None else into
    async with asyncio.timeout(WAIT):
        async for batch in journal.follow(run_id, after):
            got.extend(batch)
    return got


def seqs(events: list[Event] | list[tuple[int, str]]) -> list[int]:
    return [e.seq if isinstance(e, Event) else e[0] for e in events]


# -- an event is stored before anyone sees it ---------------------------------------------


async def test_a_follower_gets_a_line_only_once_it_is_on_disk(disk, journal_of):
    """While the store holds a write, followers get nothing; every line they get is on
    disk by then, so a kill -9 can never take a line that a client has read."""
    journal = journal_of()
    disk.hold()
    run = start(journal)
    seen: list[tuple[list[int], set[int]]] = []

    async def follower() -> None:
        async for batch in journal.follow(run.id):
            seen.append((seqs(batch), set(seqs(disk.lines(run.id)))))

    task = asyncio.create_task(follower())
    journal.emit(run, EV_OUTPUT, "one")
    await disk.until_parked()
    journal.emit(run, EV_OUTPUT, "two")
    await turns()
    assert seen == []
    disk.free()
    await until(lambda: len(seen) > 0)
    finish(journal, run)
    await asyncio.wait_for(task, WAIT)
    assert [s for batch, _ in seen for s in batch] == [1, 2, 3, 4]
    assert all(set(batch) <= on_disk for batch, on_disk in seen)


async def test_events_are_numbered_per_run_and_each_follower_gets_only_its_own(disk, journal_of):
    """Two runs writing in one batch: each run's events are 1, 2, 3…, stored in order, and
    each follower gets its own run's lines, every one."""
    journal = journal_of()
    before = time.time()
    a, b = start(journal), start(journal)
    got_a = asyncio.create_task(follow_all(journal, a.id))
    got_b = asyncio.create_task(follow_all(journal, b.id))
    for i in range(3):
        assert journal.emit(a, EV_OUTPUT, f"a{i}").seq == i + 2
        assert journal.emit(b, EV_OUTPUT, f"b{i}").seq == i + 2
    finish(journal, a)
    finish(journal, b)
    events_a, events_b = await asyncio.wait_for(asyncio.gather(got_a, got_b), WAIT)
    assert [e.data for e in events_a if e.kind == EV_OUTPUT] == ["a0", "a1", "a2"]
    assert [e.data for e in events_b if e.kind == EV_OUTPUT] == ["b0", "b1", "b2"]
    assert seqs(events_a) == seqs(disk.lines(a.id)) == [1, 2, 3, 4, 5]
    assert seqs(events_b) == seqs(disk.lines(b.id)) == [1, 2, 3, 4, 5]
    assert all(before <= e.ts <= time.time() for e in events_a + events_b)  # when written
    assert journal.channels == {}  # nothing kept of finished runs


# -- sync() tells the truth -----------------------------------------------------------------


async def test_sync_during_a_write_returns_only_once_that_write_is_done(disk, journal_of):
    """sync() called while a write is in flight returns only once it is done; a sync() for
    a line emitted after it waits for that line's own write: 'saved' is never said of a
    line that is not on disk."""
    journal = journal_of()
    disk.hold()
    run = start(journal)
    await disk.until_parked()  # the record and its first event are being written
    first = asyncio.create_task(journal.sync())
    await turns()
    journal.emit(run, EV_OUTPUT, "two")
    second = asyncio.create_task(journal.sync())
    await turns()
    assert not first.done() and not second.done()
    disk.let()  # the first write completes; the next one waits at the gate
    await asyncio.wait_for(first, WAIT)
    assert seqs(disk.lines(run.id)) == [1]
    await disk.until_parked()
    await turns()
    assert not second.done()
    disk.let()
    await asyncio.wait_for(second, WAIT)
    assert seqs(disk.lines(run.id)) == [1, 2]


async def test_sync_after_a_failed_write_raises_and_the_lines_are_written_once_it_heals(
    disk, journal_of
):
    """A failed write makes sync() raise the store's error (the caller says 503); the
    lines stay pending, in order, and are written exactly once when the store heals."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    disk.broken = "disk full (simulated)"
    journal.emit(run, EV_OUTPUT, "a")
    journal.emit(run, EV_OUTPUT, "b")
    with pytest.raises(StoreError, match="disk full"):
        await asyncio.wait_for(journal.sync(), WAIT)
    assert journal.failing
    journal.emit(run, EV_OUTPUT, "c")
    with pytest.raises(StoreError, match="disk full"):
        await asyncio.wait_for(journal.sync(), WAIT)
    assert seqs(disk.lines(run.id)) == [1]
    disk.broken = None
    await asyncio.wait_for(journal.sync(), WAIT)
    assert [d for _, d in disk.lines(run.id)][1:] == ["a", "b", "c"]
    assert seqs(disk.lines(run.id)) == [1, 2, 3, 4]
    stored = await disk.get(run.id)
    assert stored is not None and stored.last_event == 4
    assert not journal.failing


async def test_a_sync_waiting_on_a_write_that_fails_is_told(disk, journal_of):
    """sync() called while a write is in flight raises if that write fails."""
    journal = journal_of()
    disk.hold()
    run = start(journal)
    await disk.until_parked()
    waiting = asyncio.create_task(journal.sync())
    await turns()
    disk.broken = "disk full (simulated)"
    disk.let()
    with pytest.raises(StoreError):
        await asyncio.wait_for(waiting, WAIT)
    disk.broken = None
    disk.free()
    await asyncio.wait_for(journal.sync(), WAIT)
    assert seqs(disk.lines(run.id)) == [1]


@pytest.mark.parametrize("ending", ["stored", "failed"])
async def test_a_caller_that_stops_waiting_for_sync_strands_no_other(disk, journal_of, ending):
    """One sync() given up (its client went away) before the write ends: the others
    waiting are still told when their lines are stored, or that the write failed."""
    journal = journal_of()
    disk.hold()
    run = start(journal)
    await disk.until_parked()
    gone = asyncio.create_task(journal.sync())
    await turns()
    journal.emit(run, EV_OUTPUT, "two")
    staying = asyncio.create_task(journal.sync())
    await turns()
    gone.cancel()
    await turns()
    if ending == "failed":
        disk.broken = "disk full (simulated)"
        disk.let()
        with pytest.raises(StoreError):
            await asyncio.wait_for(staying, WAIT)
        return
    disk.free()
    await asyncio.wait_for(staying, WAIT)
    assert seqs(disk.lines(run.id)) == [1, 2]


# -- a new run's record --------------------------------------------------------------------


async def test_a_new_runs_job_starts_only_once_its_record_is_stored(disk, journal_of):
    """recorded() waits while the store fails; one waiter giving up neither wakes nor
    fails another; it returns once the record is on disk."""
    journal = journal_of()
    disk.broken = "disk full (simulated)"
    run = start(journal)
    gone = asyncio.create_task(journal.recorded(run.id))
    waiting = [asyncio.create_task(journal.recorded(run.id)) for _ in range(2)]
    await until(lambda: disk.failed >= 2)
    assert not gone.done() and not any(w.done() for w in waiting)
    gone.cancel()
    await turns()
    assert not any(w.done() for w in waiting)
    disk.broken = None
    await asyncio.wait_for(asyncio.gather(*waiting), WAIT)
    assert await disk.get(run.id) is not None


async def test_a_run_already_stored_does_not_wait_for_its_record(disk, journal_of):
    """A run found in the store at start (queued again) starts without a write; a new
    run in the same journal still waits for its record."""
    run = start(journal_of())
    await asyncio.wait_for(journal_of().sync(), WAIT)
    await until(lambda: disk.lines(run.id) != [])
    again = journal_of()  # the next process
    found = await disk.get(run.id)
    assert found is not None
    disk.hold()
    again.open(found)
    await asyncio.wait_for(again.recorded(found.id), WAIT)
    fresh = start(again)
    waiting = asyncio.create_task(again.recorded(fresh.id))
    await disk.until_parked()
    await turns()
    assert not waiting.done()
    disk.free()
    await asyncio.wait_for(waiting, WAIT)
    assert await disk.get(fresh.id) is not None


# -- runs refused while the store fails ---------------------------------------------------


async def test_a_run_refused_while_the_store_failed_is_never_written_later(disk, journal_of):
    """A run refused to its caller (its record could not be stored) is dropped: when the
    store heals, the run that went on is written and the refused one appears nowhere —
    not in the history, and a client asking for its events is told at once there are
    none."""
    journal = journal_of()
    kept = start(journal)
    await journal.sync()
    disk.broken = "disk full (simulated)"
    journal.emit(kept, EV_OUTPUT, "kept line")
    refused = start(journal)
    journal.emit(refused, EV_OUTPUT, "never shown")
    with pytest.raises(StoreError):
        await asyncio.wait_for(journal.sync(), WAIT)
    journal.discard(refused.id)
    disk.broken = None
    await asyncio.wait_for(journal.sync(), WAIT)
    assert await disk.get(refused.id) is None
    assert [r.id for r in await disk.list_runs()] == [kept.id]
    assert [d for _, d in disk.lines(kept.id)][1:] == ["kept line"]
    assert await follow_all(journal, refused.id) == []


async def test_the_journal_sees_the_store_heal_with_nothing_left_to_write(disk, journal_of):
    """Once its only run was refused, the journal still tries the store until it heals,
    so that it stops calling it failing (the executor makes every caller wait while it
    does)."""
    journal = journal_of()
    disk.broken = "disk full (simulated)"
    refused = start(journal)
    with pytest.raises(StoreError):
        await asyncio.wait_for(journal.sync(), WAIT)
    journal.discard(refused.id)
    await until(lambda: disk.failed >= 3)
    assert journal.failing
    disk.broken = None
    await until(lambda: not journal.failing)
    assert await disk.list_runs() == []


async def test_a_change_saved_while_the_store_fails_is_written_when_it_heals(disk, journal_of):
    """A run's change that comes with no event (the lease holder after a restart), or
    with one, is kept through failed writes: the stored record is the latest."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    disk.broken = "disk full (simulated)"
    run.owner = "host:1:2:3"
    journal.save(run)
    with pytest.raises(StoreError):
        await asyncio.wait_for(journal.sync(), WAIT)
    disk.broken = None
    await asyncio.wait_for(journal.sync(), WAIT)
    stored = await disk.get(run.id)
    assert stored is not None and stored.owner == "host:1:2:3"
    disk.broken = "disk full (simulated)"
    run.state, run.started = RUNNING, time.time()
    journal.emit(run, EV_STATUS, RUNNING_STATUS)
    with pytest.raises(StoreError):
        await asyncio.wait_for(journal.sync(), WAIT)
    disk.broken = None
    await asyncio.wait_for(journal.sync(), WAIT)
    stored = await disk.get(run.id)
    assert stored is not None and (stored.state, stored.last_event) == (RUNNING, 2)


# -- followers ------------------------------------------------------------------------------


async def test_a_follower_in_another_process_gets_every_line_and_the_end(disk, journal_of):
    """A run held by another runner process sharing the store is followed by reading the
    store a few times a second: every line once, in order, through quiet spells, ending
    after `done`."""
    writer = journal_of()
    run = start(writer)
    await writer.sync()
    other = Disk(disk.path)
    await other.open()
    try:
        reader = Journal(other)
        got: list[Event] = []
        task = asyncio.create_task(follow_all(reader, run.id, into=got))
        for i in range(3):
            writer.emit(run, EV_OUTPUT, f"line {i}")
            await writer.sync()
            await until(lambda n=i: len(got) == n + 2)
        polls = other.pages
        await asyncio.sleep(0.5)  # quiet for longer than a poll: the follower stays
        assert not task.done()
        assert other.pages - polls <= 5  # it polls; it does not spin on the store
        finish(writer, run)
        await asyncio.wait_for(task, WAIT)
        assert seqs(got) == [1, 2, 3, 4, 5]
        assert got[-1].kind == EV_DONE
    finally:
        await other.close()


@pytest.mark.parametrize("idle", [None, 0.3])
async def test_a_follower_in_another_process_polls_a_few_times_a_second(disk, journal_of, idle):
    """Following another process's run reads the store a few times a second through a
    quiet spell — not in a tight loop, not once a second — with or without keepalives;
    with them, the stream gets some."""
    writer = journal_of()
    run = start(writer)
    await writer.sync()
    reader = Journal(disk)
    got: list[list[Event]] = []

    async def follower() -> None:
        async for batch in reader.follow(run.id, idle=idle):
            got.append(batch)

    task = asyncio.create_task(follower())
    await until(lambda: len(got) == 1)
    polls = disk.pages
    await asyncio.sleep(1.0)
    assert 2 <= disk.pages - polls <= 10  # every 0.2 s
    assert (idle is not None) == ([] in got)
    finish(writer, run)
    await asyncio.wait_for(task, WAIT)
    assert seqs([e for batch in got for e in batch]) == [1, 2]


async def test_a_stored_run_taken_up_here_is_followed_live(disk, journal_of):
    """A follower of a run queued in the store (by a process that is gone, or another
    replica) goes on live once this process takes the run up: every line once, from
    memory, without polling the store."""
    gone = journal_of()
    run = start(gone)
    await gone.sync()
    here = journal_of()
    got: list[Event] = []
    task = asyncio.create_task(follow_all(here, run.id, into=got))
    await until(lambda: len(got) == 1)
    taken = await disk.get(run.id)
    assert taken is not None
    here.open(taken)  # recovery queues it again here
    await asyncio.sleep(0.3)  # the follower's next look finds it live here
    polls = disk.pages
    for i in range(20):
        here.emit(taken, EV_OUTPUT, f"line {i}")
        await here.sync()
    finish(here, taken)
    await asyncio.wait_for(task, WAIT)
    assert seqs(got) == list(range(1, 23))
    assert disk.pages - polls <= 1


async def test_a_follower_of_a_run_queued_again_here_gets_its_stored_lines_at_once(
    disk, journal_of
):
    """A run queued again after a restart (waiting for its slot or key): a client that
    attaches gets the lines stored before the restart at once, not at the run's next
    line, then the rest live."""
    gone = journal_of()
    run = start(gone)
    gone.emit(run, EV_OUTPUT, "before the restart")
    await gone.sync()
    here = journal_of()  # the next process
    taken = await disk.get(run.id)
    assert taken is not None
    here.open(taken)
    got: list[Event] = []
    task = asyncio.create_task(follow_all(here, run.id, into=got))
    await until(lambda: len(got) == 2)
    assert [e.data for e in got][1:] == ["before the restart"]
    here.emit(taken, EV_OUTPUT, "after")
    finish(here, taken)
    await asyncio.wait_for(task, WAIT)
    assert seqs(got) == [1, 2, 3, 4]


async def test_a_follower_of_no_run_or_past_the_end_is_told_at_once(disk, journal_of):
    """An unknown run id, or re-attaching after `done` (Last-Event-ID of the last event),
    ends the stream with nothing instead of waiting for ever."""
    journal = journal_of()
    assert await follow_all(journal, new_run_id()) == []
    run = start(journal)
    finish(journal, run)
    await journal.sync()
    assert await follow_all(journal, run.id, after=2) == []
    assert seqs(await follow_all(journal, run.id, after=1)) == [2]


async def test_a_long_replay_comes_in_pages(disk, journal_of):
    """A finished run's log is replayed a page of 1000 events at a time: one long replay
    shares the loop with every other request."""
    journal = journal_of()
    run = start(journal)
    for i in range(2500):
        journal.emit(run, EV_OUTPUT, f"line {i}")
    finish(journal, run)
    await journal.sync()
    sizes = []
    async with asyncio.timeout(WAIT):
        async for batch in journal.follow(run.id):
            sizes.append(len(batch))
    assert sizes == [PAGE, PAGE, 502]


async def test_a_follower_that_keeps_up_never_reads_the_store(disk, journal_of):
    """Followers that keep up — or lag a few lines — are served from memory, even when one
    batch alone is over the memory's bounds: a hundred followers cost the store nothing."""
    journal = journal_of()
    run = start(journal)
    got = [asyncio.create_task(follow_all(journal, run.id)) for _ in range(3)]
    for i in range(20):
        journal.emit(run, EV_OUTPUT, f"line {i}")
        await turns(2)
    for _ in range(RING + 100):  # one batch longer than the ring
        journal.emit(run, EV_OUTPUT, "burst")
    await turns(5)
    for _ in range(RING_BYTES // 4096 + 1):  # one batch larger than the ring's bytes
        journal.emit(run, EV_OUTPUT, "b" * 4096)
    await journal.sync()
    lagging = asyncio.create_task(follow_all(journal, run.id, after=run.last_event - 3))
    for i in range(3):
        journal.emit(run, EV_OUTPUT, f"after {i}")
        await journal.sync()
    finish(journal, run)
    for events in await asyncio.wait_for(asyncio.gather(*got), WAIT):
        assert seqs(events) == list(range(1, run.last_event + 1))
    assert len(await asyncio.wait_for(lagging, WAIT)) == 7
    assert (disk.pages, disk.gets) == (0, 0)


@pytest.mark.parametrize(
    ("lines", "size", "kept"),
    [
        (RING + 1500, 8, RING),
        (RING_BYTES // (64 << 10) + 24, 64 << 10, RING_BYTES // (64 << 10)),
    ],
    ids=["count", "bytes"],
)
async def test_a_follower_far_behind_gets_the_rest_from_the_store(
    disk, journal_of, lines, size, kept
):
    """Memory keeps the last 4096 events and 1 MiB of a live run: a follower within them
    reads nothing from the store; one further behind reads the rest from the store, then
    follows live — every line once, in order."""
    journal = journal_of()
    run = start(journal)
    for i in range(lines):
        journal.emit(run, EV_OUTPUT, f"{i:08d}".ljust(size, "."))
        if i % 500 == 499 or size > 100:
            await journal.sync()
    await journal.sync()
    last = run.last_event
    within = [
        asyncio.create_task(follow_all(journal, run.id, after=after))
        for after in (last - kept, last - 3)
    ]
    await turns()
    assert disk.pages == 0
    beyond: list[Event] = []
    everything: list[Event] = []
    behind = [asyncio.create_task(follow_all(journal, run.id, after=last - kept - 1, into=beyond))]
    await until(lambda: len(beyond) == kept + 1)
    assert disk.pages > 0  # one line more than memory keeps: from the store
    behind.append(asyncio.create_task(follow_all(journal, run.id, into=everything)))
    await until(lambda: len(everything) == last)
    reads = disk.pages
    finish(journal, run)
    done = await asyncio.wait_for(asyncio.gather(*within, *behind), WAIT)
    assert [len(events) for events in done] == [kept + 1, 4, kept + 2, last + 1]
    assert seqs(everything) == list(range(1, last + 2))
    assert [int(e.data[:8]) for e in everything if e.kind == EV_OUTPUT] == list(range(lines))
    assert disk.pages == reads  # the live tail: from memory


@pytest.mark.parametrize("idle", [None, 0.05, 60])
async def test_a_quiet_run_gets_keepalives_when_asked_and_every_line(disk, journal_of, idle):
    """With ``idle``, a follower gets an empty batch (the stream's keepalive) after each
    ``idle`` seconds of silence, never sooner; without, only lines."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    got: list[list[int]] = []

    async def follower() -> None:  # re-attached after the first event: nothing to read
        async for batch in journal.follow(run.id, after=1, idle=idle):
            got.append(seqs(batch))

    task = asyncio.create_task(follower())
    await asyncio.sleep(0.3)
    journal.emit(run, EV_OUTPUT, "after a silence")
    await until(lambda: [2] in got)
    await asyncio.sleep(0.3)
    finish(journal, run)
    await asyncio.wait_for(task, WAIT)
    assert [s for batch in got for s in batch] == [2, 3]
    quiet = [i for i, batch in enumerate(got) if batch == []]
    if idle == 0.05:
        # keepalives in both silences: before line 2 and after it
        assert any(i < got.index([2]) for i in quiet) and any(i > got.index([2]) for i in quiet)
    else:
        assert quiet == []


async def test_followers_that_leave_mid_wait_leave_nothing_behind_and_others_go_on(
    disk, journal_of
):
    """Clients that hang up while a run is quiet (their stream tasks cancelled while they
    wait) hold nothing of the run's, and a follower that stayed still gets the next line."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    stayed: list[int] = []

    async def follower(into: list[int]) -> None:
        async for batch in journal.follow(run.id, after=1, idle=30):
            into.extend(seqs(batch))

    leaving = [asyncio.create_task(follower([])) for _ in range(50)]
    staying = asyncio.create_task(follower(stayed))
    await turns()
    for task in leaving:
        task.cancel()
    await asyncio.gather(*leaving, return_exceptions=True)
    channel = journal.channels[run.id]
    assert len(channel._waiters) == 1  # only the one that stayed waits
    keepalives: list[int] = []

    async def quick() -> None:  # its waits time out every 10 ms: a keepalive each
        async for batch in journal.follow(run.id, after=1, idle=0.01):
            keepalives.append(len(batch))

    ticking = asyncio.create_task(quick())
    await until(lambda: keepalives.count(0) >= 10)
    assert len(channel._waiters) <= 2  # timed-out waits are not kept either
    journal.emit(run, EV_OUTPUT, "still here")
    await until(lambda: stayed == [2])
    ticking.cancel()
    finish(journal, run)
    await asyncio.wait_for(staying, WAIT)
    assert stayed == [2, 3]


# -- hooks -----------------------------------------------------------------------------------


class Recorder(Extension):
    """Records each lifecycle hook with what was on disk when it was called."""

    def __init__(self, disk: Disk) -> None:
        self.disk = disk
        self.calls: list[tuple[str, str, int]] = []

    def _note(self, hook: str, run: RunRecord, kind: str) -> None:
        """Note the call with the stored event of ``kind`` it follows (seq 0: none)."""
        stored = self.disk.lines(run.id)
        seq = max((s for s, data in stored if _kind(data) == kind), default=0)
        self.calls.append((hook, run.id, seq))

    def on_submitted(self, run: RunRecord) -> None:
        self._note("submitted", run, EV_RUN)

    def on_started(self, run: RunRecord) -> None:
        self._note("started", run, EV_STATUS)

    def on_event(self, run: RunRecord, event: Event) -> None:
        stored = event.seq in seqs(self.disk.lines(run.id))
        self.calls.append((event.kind, run.id, event.seq if stored else 0))

    def on_finished(self, run: RunRecord) -> None:
        self._note("finished", run, EV_DONE)


def _kind(data: str) -> str:
    """The kind of a stored event of these tests, told by its data."""
    if not data.startswith("{"):
        return EV_OUTPUT
    body = json.loads(data)
    return EV_RUN if "id" in body else EV_DONE if "exit_code" in body else EV_STATUS


async def test_hooks_are_called_once_per_event_after_it_is_stored(disk, journal_of):
    """Extensions see each event of each run once, after its commit — even when the
    store failed first."""
    recorder = Recorder(disk)
    journal = journal_of(extensions=Extensions([recorder]))
    disk.broken = "disk full (simulated)"
    a, b = start(journal), start(journal)
    for run in (a, b):
        run.state = RUNNING
        journal.emit(run, EV_STATUS, RUNNING_STATUS)
    with pytest.raises(StoreError):
        await asyncio.wait_for(journal.sync(), WAIT)
    assert recorder.calls == []
    disk.broken = None
    finish(journal, a)
    await journal.sync()
    assert [c for c in recorder.calls if c[1] == a.id] == [
        ("submitted", a.id, 1),
        ("run", a.id, 1),
        ("started", a.id, 2),
        ("status", a.id, 2),
        ("done", a.id, 3),
        ("finished", a.id, 3),
    ]
    assert [c[0] for c in recorder.calls if c[1] == b.id] == [
        "submitted",
        "run",
        "started",
        "status",
    ]


# -- backpressure -----------------------------------------------------------------------------


async def test_an_awaited_print_waits_for_the_store_only_past_the_soft_limit(disk, journal_of):
    """``await ctx.print`` goes on at once while little output waits; past 256 KiB it
    waits for the store; once that is written, small output goes on at once again."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    disk.hold()
    journal.emit(run, EV_OUTPUT, "x" * 1000)
    await asyncio.wait_for(journal.drained(), WAIT)
    await disk.until_parked()
    chunk = "y" * (64 << 10)
    for _ in range(PENDING_SOFT // len(chunk) + 1):
        journal.emit(run, EV_OUTPUT, chunk)
    waiting = asyncio.create_task(journal.drained())
    await turns()
    assert not waiting.done()
    disk.free()
    await asyncio.wait_for(waiting, WAIT)
    written = len(disk.lines(run.id))
    assert written == PENDING_SOFT // len(chunk) + 3
    disk.hold()
    journal.emit(run, EV_OUTPUT, "small again")
    await asyncio.wait_for(journal.drained(), WAIT)
    assert len(disk.lines(run.id)) == written


async def test_output_refused_by_the_store_still_counts_against_the_soft_limit(disk, journal_of):
    """A failed write does not make its output vanish from the reckoning: past 256 KiB,
    prints keep waiting for the store, and a failing store does not raise into the job."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    disk.broken = "disk full (simulated)"
    chunk = "y" * (64 << 10)
    for _ in range(PENDING_SOFT // len(chunk) + 1):
        journal.emit(run, EV_OUTPUT, chunk)
    await asyncio.wait_for(journal.drained(), WAIT)  # told elsewhere, not raised here
    assert disk.failed >= 1
    disk.hold()
    disk.broken = None
    waiting = asyncio.create_task(journal.drained())
    await disk.until_parked()
    await turns()
    assert not waiting.done()
    disk.free()
    await asyncio.wait_for(waiting, WAIT)
    assert len(disk.lines(run.id)) == PENDING_SOFT // len(chunk) + 2


LINE = "z" * (64 << 10)
BURST = PENDING_HARD // len(LINE) + 2  # lines that pass the hard limit without an await


async def test_a_job_that_never_awaits_has_its_output_stored_as_it_goes(disk, journal_of):
    """Past 8 MiB waiting, the journal commits inline: the lines are on disk before the
    job ever yields (what a kill -9 then leaves), followers and sync() waiters are told,
    and the next small print waits for nothing."""
    recorder = Recorder(disk)
    journal = journal_of(extensions=Extensions([recorder]))
    run = start(journal)
    follower = asyncio.create_task(follow_all(journal, run.id))
    await turns()
    journal.emit(run, EV_OUTPUT, "first")
    syncing = asyncio.create_task(journal.sync())
    await asyncio.sleep(0)  # sync() waits now; the flush has not started
    for _ in range(BURST):
        journal.emit(run, EV_OUTPUT, LINE)
    on_disk = seqs(disk.lines(run.id))
    assert on_disk == list(range(1, len(on_disk) + 1)) and len(on_disk) > PENDING_HARD // len(LINE)
    told = [seq for kind, _, seq in recorder.calls if kind == EV_OUTPUT]
    assert told == on_disk[1:]  # extensions too, each line once it is stored
    disk.hold()  # what comes next waits: the inline commit must have told everyone
    await asyncio.wait_for(syncing, WAIT)
    await asyncio.wait_for(journal.drained(), WAIT)
    disk.free()
    finish(journal, run)
    events = await asyncio.wait_for(follower, WAIT)
    assert seqs(events) == list(range(1, BURST + 4))


async def test_a_new_run_written_inline_starts_without_waiting_for_the_next_write(disk, journal_of):
    """A new run whose record went out in an inline commit is recorded: its job starts
    even while the next write waits, and its followers see the lines already stored."""
    journal = journal_of()
    run = start(journal)
    got: list[Event] = []
    follower = asyncio.create_task(follow_all(journal, run.id, into=got))
    for _ in range(BURST):
        journal.emit(run, EV_OUTPUT, LINE)
    stored = seqs(disk.lines(run.id))
    assert stored == list(range(1, len(stored) + 1)) and len(stored) > PENDING_HARD // len(LINE)
    disk.hold()
    journal.emit(run, EV_OUTPUT, "held")
    await asyncio.wait_for(journal.recorded(run.id), WAIT)
    await disk.until_parked()
    await until(lambda: seqs(got) == stored)
    disk.free()
    finish(journal, run)
    await asyncio.wait_for(follower, WAIT)
    assert seqs(got) == list(range(1, BURST + 4))


async def test_an_inline_commit_refused_by_the_store_loses_nothing(disk, journal_of):
    """A failing store during a burst: the job goes on, and every line and the run's
    latest record are written, once and in order, when the store heals."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    disk.broken = "disk full (simulated)"
    run.state = RUNNING
    journal.save(run)
    for _ in range(BURST):
        journal.emit(run, EV_OUTPUT, LINE)
    assert disk.failed >= 1
    disk.broken = None
    await asyncio.wait_for(journal.sync(), WAIT)
    assert seqs(disk.lines(run.id)) == list(range(1, BURST + 2))
    stored = await disk.get(run.id)
    assert stored is not None and (stored.state, stored.last_event) == (RUNNING, BURST + 1)


async def test_no_inline_commit_overtakes_a_write_in_flight(disk, journal_of):
    """While a write is in flight, a burst waits behind it: the stored log never has a
    hole, and sync() does not return before the earlier lines are on disk."""
    journal = journal_of()
    run = await write_in_flight(journal, disk)
    for _ in range(BURST):
        journal.emit(run, EV_OUTPUT, LINE)
    assert seqs(disk.lines(run.id)) == [1]
    syncing = asyncio.create_task(journal.sync())
    await turns()
    assert not syncing.done()
    disk.free()
    await asyncio.wait_for(syncing, WAIT)
    assert seqs(disk.lines(run.id)) == list(range(1, BURST + 3))


class AsyncOnly:
    """A store with no inline write (as a networked database has none)."""

    def __init__(self, disk: Disk) -> None:
        self.disk = disk

    async def write(self, runs, events) -> None:
        await asyncio.sleep(0)
        await self.disk.write(runs, events)

    async def events(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        return await self.disk.events(run_id, after, limit)

    async def get(self, run_id: str) -> RunRecord | None:
        return await self.disk.get(run_id)


async def test_a_store_without_inline_writes_takes_a_burst_at_the_next_turn(disk, journal_of):
    """On a store that can only write asynchronously, a burst waits for the next turn."""
    journal = journal_of(AsyncOnly(disk))
    run = start(journal)
    for _ in range(BURST):
        journal.emit(run, EV_OUTPUT, LINE)
    assert disk.lines(run.id) == []
    await asyncio.wait_for(journal.sync(), WAIT)
    assert seqs(disk.lines(run.id)) == list(range(1, BURST + 2))


# -- failures in the middle of things -------------------------------------------------------


async def test_lines_emitted_while_a_failing_write_is_in_flight_are_kept_and_counted(
    disk, journal_of
):
    """Output written while a write is in flight that then fails is neither lost nor
    forgotten: it still holds up awaited prints, and all of it is stored, in order."""
    journal = journal_of()
    run = await write_in_flight(journal, disk)
    chunk = "y" * (64 << 10)
    chunks = PENDING_SOFT // len(chunk) + 1
    for _ in range(chunks):
        journal.emit(run, EV_OUTPUT, chunk)
    disk.broken = "disk full (simulated)"
    disk.let()
    await until(lambda: disk.failed >= 1)
    disk.broken = None  # healed, but the retry waits at the gate
    waiting = asyncio.create_task(journal.drained())
    await disk.until_parked()
    await turns()
    assert not waiting.done()
    disk.free()
    await asyncio.wait_for(waiting, WAIT)
    assert [d for _, d in disk.lines(run.id)][1:] == ["in flight"] + [chunk] * chunks


async def test_the_store_failing_again_after_a_success_loses_nothing(disk, journal_of, caplog):
    """A write that succeeds, then the next one fails: the journal retries as before,
    after the shortest pause again (a store that healed once is not held against it)."""
    journal = journal_of()
    disk.broken = "disk full (simulated)"
    run = start(journal)
    await until(lambda: disk.failed >= 2)  # the pause has grown
    disk.broken = None
    disk.hold()
    await disk.until_parked()
    journal.emit(run, EV_OUTPUT, "second batch")
    disk.let()  # the first batch is written…
    await until(lambda: seqs(disk.lines(run.id)) == [1])
    await disk.until_parked()  # …the second is in flight
    disk.broken = "disk full (simulated)"
    caplog.clear()
    disk.let()
    await until(lambda: "retrying" in caplog.text)
    disk.broken = None
    disk.free()
    await asyncio.wait_for(journal.sync(), WAIT)
    assert seqs(disk.lines(run.id)) == [1, 2]
    assert "retrying in 0.05s" in caplog.text


async def test_a_store_that_stays_down_is_retried_with_growing_pauses(disk, journal_of, caplog):
    """A failing store is tried a few times a second, not in a tight loop; each failed
    try is an error in the log that names the store's reason and the pause, doubling."""
    journal = journal_of()
    disk.broken = "disk full (simulated)"
    start(journal)
    await asyncio.sleep(0.5)
    assert 1 <= disk.failed <= 6  # 0, 0.05, 0.15, 0.35 s: doubling pauses
    errors = [r.getMessage() for r in caplog.records if r.name == "runner.journal"]
    assert errors[:3] == [
        f"store write failed (disk full (simulated)); retrying in {pause}s"
        for pause in ("0.05", "0.10", "0.20")
    ]


async def test_a_burst_after_the_store_heals_is_stored_between_retries(disk, journal_of):
    """A job writing a burst while the journal waits to retry a failed write, the store
    healed meanwhile: the burst and the lines refused before it are stored at once, in
    order."""
    journal = journal_of()
    run = start(journal)
    await journal.sync()
    disk.broken = "disk full (simulated)"
    journal.emit(run, EV_OUTPUT, "refused first")
    await until(lambda: disk.failed >= 1)
    disk.broken = None
    for _ in range(BURST):
        journal.emit(run, EV_OUTPUT, LINE)
    stored = disk.lines(run.id)
    assert stored[1] == (2, "refused first")
    assert seqs(stored) == list(range(1, len(stored) + 1))
    assert len(stored) > PENDING_HARD // len(LINE)


async def test_output_up_to_the_limits_waits_and_one_byte_more_does_not(disk, journal_of):
    """256 KiB may wait for the store before an awaited print waits; 8 MiB before the
    journal commits inline — exactly those, one byte more is past them."""
    journal = journal_of()
    run = await write_in_flight(journal, disk)
    chunk = "s" * (64 << 10)
    for _ in range(PENDING_SOFT // len(chunk)):
        journal.emit(run, EV_OUTPUT, chunk)
    await asyncio.wait_for(journal.drained(), WAIT)  # exactly 256 KiB: no wait
    journal.emit(run, EV_OUTPUT, "!")
    waiting = asyncio.create_task(journal.drained())
    await turns()
    assert not waiting.done()
    disk.free()
    await asyncio.wait_for(waiting, WAIT)
    written = len(disk.lines(run.id))
    for _ in range(PENDING_HARD // len(LINE)):  # exactly 8 MiB: no inline commit
        journal.emit(run, EV_OUTPUT, LINE)
    assert len(disk.lines(run.id)) == written
    journal.emit(run, EV_OUTPUT, "!")
    assert len(disk.lines(run.id)) == written + PENDING_HARD // len(LINE) + 1
    disk.hold()  # after an inline commit, nothing is reckoned as waiting: 256 KiB again
    for _ in range(PENDING_SOFT // len(chunk)):
        journal.emit(run, EV_OUTPUT, chunk)
    await asyncio.wait_for(journal.drained(), WAIT)

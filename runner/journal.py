"""The journal: numbers events, commits them in batches, then wakes live followers.

The one rule: **an event is stored before anyone can see it.** ``emit`` only queues; a
flush (scheduled a couple of loop turns later, see ``TURNS``, so events emitted
together share one transaction) writes the batch and only then publishes it to
followers. A client can therefore never have read a line that a ``kill -9`` takes out of
the stored log.

Followers read from a per-run ring of recent committed events while they keep up, and
from the store when they fall behind or re-attach later, so replay and live use one path.
The lifecycle hooks of the extensions (:mod:`runner.hooks`) are called at the same point
as followers are woken: after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

from runner.hooks import Extensions
from runner.records import EV_DONE, Event, RunRecord
from runner.store.base import Store

log = logging.getLogger("runner.journal")

# Output waiting to be committed: past SOFT, ``await ctx.print(…)`` waits for the store;
# past HARD, the journal commits inline (a job that never awaits cannot pile up output).
PENDING_SOFT = 256 << 10
PENDING_HARD = 8 << 20
RING = 4096  # recent events kept per live run for followers that keep up…
RING_BYTES = 1 << 20  # …and at most this much of their text (64 KiB lines add up fast)
PAGE = 1000  # events read from the store at a time when replaying
# Loop turns a flush waits before it writes. A Python job that prints its last line and
# returns has its `done` emitted two turns later (its task's end wakes the executor's), so
# with two a short run's output and its end share one commit (and one write to its
# stream): 2 commits per run instead of 3, measured with cProfile call counts.
TURNS = 2


class Channel:
    """Live state of one run: recent committed events and a wake-up for followers."""

    __slots__ = ("_waiters", "last", "recent", "size")

    def __init__(self, last: int) -> None:
        self.recent: deque[Event] = deque()
        self.size = 0  # bytes of text in ``recent``
        # A run queued again after a restart has events in the store and none here yet:
        # a follower from before ``last`` reads them from the store, not at the next one.
        self.last = last
        self._waiters: list[asyncio.Future[None]] = []

    def publish(self, events: list[Event]) -> None:
        self.recent.extend(events)
        self.size += sum(len(e.data) for e in events)
        # Older events leave the ring (followers behind read them from the store), but the
        # newest batch always stays: a follower that keeps up never reads the store.
        while len(self.recent) > len(events) and (
            len(self.recent) > RING or self.size > RING_BYTES
        ):
            self.size -= len(self.recent.popleft().data)
        self.last = events[-1].seq
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def since(self, after: int) -> list[Event] | None:
        """Events with seq > after from the ring, or None if the ring no longer has them."""
        if not self.recent:
            return None if after < self.last else []
        first = self.recent[0].seq
        if after + 1 < first:
            return None
        return list(itertools.islice(self.recent, after + 1 - first, None))

    async def wait(self, after: int, at_most: float | None = None) -> None:
        """Return once an event with seq > ``after`` has been published, or after
        ``at_most`` seconds. A future and a timer of its own (not asyncio.timeout, whose
        task bookkeeping cost more than the wait): every stream waits here per batch."""
        if self.last > after:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if at_most is None else loop.call_later(at_most, _expire, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            # Timed out, or a follower that left: a publish would have taken it out (the
            # usual end: then the list is new, mostly empty, and nothing is raised).
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class Journal:
    """Single writer of events for this process."""

    def __init__(self, store: Store, extensions: Extensions | None = None) -> None:
        self.store = store
        self.extensions = extensions or Extensions()
        self.channels: dict[str, Channel] = {}
        self._events: list[Event] = []
        self._runs: dict[str, RunRecord] = {}
        self._flushing: asyncio.Task[None] | None = None
        # sync(): how many changes were emitted, and how many of them are committed.
        self._emitted = 0
        self._committed = 0
        self._syncers: list[tuple[int, asyncio.Future[BaseException | None]]] = []
        self.failing = False  # the last write failed: the store is down
        self._pending = 0  # bytes of event text not committed yet
        self._writing = False  # the flush loop awaits the store
        # Runs held until what was emitted for them is in the store (the mark it takes),
        # and who waits for it.
        self._unstored: dict[str, int] = {}
        self._recorded: dict[str, asyncio.Future[None]] = {}
        # Runs held elsewhere: how a follower waits for their next events (a poll, or the
        # replicas' doorbell); set by the executor's coordination.
        self.remote_wait: Callable[[str, int], Awaitable[None]] = _poll
        # Runs another replica took from this one: their writes were refused (fenced).
        self.on_fenced: Callable[[Collection[str]], None] = lambda run_ids: None
        self._fenced: set[str] = set()

    def open(self, run: RunRecord) -> None:
        """Start live tracking of a run (before its first event)."""
        self.channels.setdefault(run.id, Channel(run.last_event))

    def hold(self, run_id: str) -> None:
        """Mark what was emitted so far for ``run_id``: :meth:`recorded` waits for it."""
        self._unstored[run_id] = self._emitted
        if self._committed >= self._emitted:
            self._unstored.pop(run_id)

    async def recorded(self, run_id: str) -> None:
        """Return once what was emitted for the run until :meth:`hold` is in the store:
        its record and its `running` status. A run's job starts only then, so a crash can
        never leave a job that acted while the store still says `queued` (a run queued
        in the store never started: recovery may run it again, here or on a replica).
        While the store fails this waits (the flush retries); cancelling it is safe."""
        if run_id not in self._unstored:
            return
        waiter = self._recorded.get(run_id)
        if waiter is None:
            waiter = self._recorded[run_id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def emit(self, run: RunRecord, kind: str, data: str) -> Event:
        """Append an event to ``run``'s log; stored at the next flush, then published."""
        if run.id in self._fenced:
            # Another replica holds the run now: nothing more of it is this one's to write.
            return Event(run.id, run.last_event, kind, data, time.time())
        run.last_event += 1
        event = Event(run.id, run.last_event, kind, data, time.time())
        self._events.append(event)
        self._runs[run.id] = run
        self._pending += len(data)
        self._schedule()
        if self._pending > PENDING_HARD:
            self._commit_inline()
        return event

    async def drained(self) -> None:
        """Return when little enough output waits to be stored: a job that awaits its
        prints (``await ctx.print(…)``) goes no faster than the store commits."""
        if self._pending > PENDING_SOFT:
            with contextlib.suppress(Exception):  # a failing store is said elsewhere
                await self.sync()

    def _commit_inline(self) -> None:
        """Commit what is pending now, on a store that can (SQLite's calls are synchronous
        anyway): a job printing in a loop without awaiting never gives the flush a turn."""
        write_now = getattr(self.store, "write_now", None)
        if write_now is None or self._writing:
            return  # an async store: output waits for the next turn (and the job's await)
        events, runs = self._events, list(self._runs.values())
        try:
            write_now(runs, events)
        except Exception:
            return  # all of it stays pending: the flush retries and says the failure
        self._events, self._runs = [], {}
        self._pending = 0
        self._committed = self._emitted
        self._stored(runs)
        self._publish(events, runs)
        self._resolve(None)

    def save(self, run: RunRecord) -> None:
        """Record a change of ``run`` that comes with no event."""
        self._runs[run.id] = run
        self._schedule()

    def _schedule(self) -> None:
        self._emitted += 1
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_loop())

    async def sync(self) -> None:
        """Return once everything emitted so far is committed.

        Raises the store's error if a write failed meanwhile (the events stay pending and
        are written when the store heals).
        """
        if self._committed >= self._emitted:
            return
        waiter: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._syncers.append((self._emitted, waiter))
        failed = await waiter
        if failed is not None:
            raise failed

    async def _flush_loop(self) -> None:
        backoff = 0.05
        try:
            # A few loop turns later than "now": tasks made ready meanwhile (a new run's
            # first step, a job's end) emit into the same batch (see TURNS).
            for _ in range(TURNS):
                await asyncio.sleep(0)
            # While the store is failing the loop goes on even with nothing to write (the
            # refused batch may have been discarded): an empty write tells when it heals.
            while self._events or self._runs or self.failing:
                mark = self._emitted
                events, self._events = self._events, []
                runs, self._runs = list(self._runs.values()), {}
                self._pending -= sum(len(e.data) for e in events)
                try:
                    self._writing = True
                    fenced = await self.store.write(runs, events)
                except Exception as exc:
                    # Nothing unstored is ever shown, and nothing is dropped: the batch goes
                    # back in front of what came since and is written when the store heals.
                    # Followers wait meanwhile; sync() tells its waiters about the failure.
                    log.error("store write failed (%s); retrying in %.2fs", exc, backoff)
                    self._pending += sum(len(e.data) for e in events)
                    self._events[:0] = events
                    self._runs = {r.id: r for r in runs} | self._runs
                    self.failing = True
                    self._resolve(exc)
                    self._writing = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                finally:
                    self._writing = False
                backoff = 0.05
                self.failing = False
                self._committed = mark
                if fenced:
                    events = self._fence(fenced, events)
                self._stored(runs)
                self._publish(events, runs)
                self._resolve(None)
        finally:
            self._flushing = None

    def _fence(self, run_ids: Collection[str], events: list[Event]) -> list[Event]:
        """Drop what was refused for runs another replica took; tell the executor."""
        self._fenced.update(run_ids)
        for run_id in run_ids:
            self.channels.pop(run_id, None)  # its followers read the store from now on
        self.on_fenced(run_ids)
        return [e for e in events if e.run_id not in self._fenced]

    def _resolve(self, failed: BaseException | None) -> None:
        """Wake sync() waiters: all of them on a failure, the covered ones on success."""
        keep = []
        for target, waiter in self._syncers:
            if waiter.done():
                continue
            if failed is not None:
                waiter.set_result(failed)
            elif target <= self._committed:
                waiter.set_result(None)
            else:
                keep.append((target, waiter))
        self._syncers = keep

    def _stored(self, runs: list[RunRecord]) -> None:
        for run in runs:
            mark = self._unstored.get(run.id)
            if mark is not None and mark <= self._committed:
                del self._unstored[run.id]
                waiter = self._recorded.pop(run.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def discard(self, run_id: str) -> None:
        """Forget a run that was refused before anyone saw it (its writes failed)."""
        self._events = [e for e in self._events if e.run_id != run_id]
        self._runs.pop(run_id, None)
        self.channels.pop(run_id, None)
        self._unstored.pop(run_id, None)

    def _publish(self, events: list[Event], runs: list[RunRecord]) -> None:
        # Only the runs of extensions' interest: with none watching, nothing to look up.
        records = {r.id: r for r in runs} if self.extensions.watching else {}
        for run_id, group in itertools.groupby(events, key=lambda e: e.run_id):
            batch = list(group)
            channel = self.channels.get(run_id)
            if channel is not None:
                channel.publish(batch)
                if batch[-1].kind == EV_DONE:
                    del self.channels[run_id]
            if run_id in records:
                self.extensions.committed(records[run_id], batch)

    async def follow(
        self, run_id: str, after: int = 0, *, idle: float | None = None
    ) -> AsyncIterator[list[Event]]:
        """Batches of a run's events with seq > ``after``: replay, then live, until done.

        Ends after the ``done`` event; for a run that is neither live here nor finished
        (another replica's, later) it polls the store. With ``idle``, an empty batch comes
        after every ``idle`` seconds without an event: the stream's cue for a keepalive.
        """
        last = after
        quiet_since = time.monotonic()
        channel: Channel | None = None
        while True:
            # Once found, the channel is kept: its ring still holds the final batch after
            # _publish dropped it from self.channels, sparing a re-read from the store.
            channel = channel or self.channels.get(run_id)
            batch = channel.since(last) if channel is not None else None
            if batch is None:
                batch = await self.store.events(run_id, last, PAGE)
            if batch:
                yield batch
                last = batch[-1].seq
                if batch[-1].kind == EV_DONE:
                    return
                quiet_since = time.monotonic()
                continue
            if idle is not None and time.monotonic() - quiet_since >= idle:
                yield []
                quiet_since = time.monotonic()
            if channel is not None:
                await channel.wait(last, _left(idle, quiet_since))
                continue
            try:
                # asyncio.timeout, not wait_for: no task per wait.
                async with asyncio.timeout(_left(idle, quiet_since)):
                    await self._wait_remote(run_id, last)
            except TimeoutError:
                continue
            if run_id not in self.channels:
                run = await self.store.get(run_id)
                if run is None or (run.last_event <= last and run.finished is not None):
                    return

    async def _wait_remote(self, run_id: str, after: int) -> None:
        """Until an event after ``after`` may be there, for a run this process does not
        hold: a poll interval, or the replicas' doorbell (none if it became live here)."""
        if run_id not in self.channels:
            await self.remote_wait(run_id, after)


async def _poll(run_id: str, after: int) -> None:
    await asyncio.sleep(0.2)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _left(idle: float | None, since: float) -> float | None:
    return None if idle is None else max(0.0, idle - (time.monotonic() - since))

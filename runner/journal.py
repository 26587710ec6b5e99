"""The journal: numbers events, commits them in batches, then wakes live followers.

The one rule: **an event is stored before anyone can see it.** ``emit`` only queues; a
flush (scheduled for the next loop turn, so events emitted together share one
transaction) writes the batch and only then publishes it to followers. A client can
therefore never have read a line that a ``kill -9`` takes out of the stored log.

Followers read from a per-run ring of recent committed events while they keep up, and
from the store when they fall behind or re-attach later, so replay and live use one path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator

from runner.records import EV_DONE, Event, RunRecord
from runner.store.base import Store

log = logging.getLogger("runner.journal")

RING = 4096  # recent events kept per live run for followers that keep up
PAGE = 5000  # events read from the store at a time when replaying


class Channel:
    """Live state of one run: recent committed events and a wake-up for followers."""

    __slots__ = ("_wake", "last", "recent")

    def __init__(self) -> None:
        self.recent: deque[Event] = deque(maxlen=RING)
        self.last = 0
        self._wake = asyncio.Event()

    def publish(self, events: list[Event]) -> None:
        self.recent.extend(events)
        self.last = events[-1].seq
        self._wake.set()
        self._wake = asyncio.Event()

    def since(self, after: int) -> list[Event] | None:
        """Events with seq > after from the ring, or None if the ring no longer has them."""
        if not self.recent:
            return None if after < self.last else []
        first = self.recent[0].seq
        if after + 1 < first:
            return None
        return list(itertools.islice(self.recent, after + 1 - first, None))

    async def wait(self, after: int) -> None:
        """Return once an event with seq > ``after`` has been published."""
        if self.last <= after:
            await self._wake.wait()


class Journal:
    """Single writer of events for this process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.channels: dict[str, Channel] = {}
        self._events: list[Event] = []
        self._runs: dict[str, RunRecord] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self.failed: BaseException | None = None

    def open(self, run: RunRecord) -> None:
        """Start live tracking of a run (before its first event)."""
        self.channels.setdefault(run.id, Channel())

    def emit(self, run: RunRecord, kind: str, data: str) -> Event:
        """Append an event to ``run``'s log; stored at the next flush, then published."""
        run.last_event += 1
        event = Event(run.id, run.last_event, kind, data, time.time())
        self._events.append(event)
        self._runs[run.id] = run
        self._schedule()
        return event

    def save(self, run: RunRecord) -> None:
        """Record a change of ``run`` that comes with no event."""
        self._runs[run.id] = run
        self._schedule()

    def _schedule(self) -> None:
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_loop())

    async def sync(self) -> None:
        """Return once everything emitted so far is committed."""
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
        if self.failed is not None:
            # Reported once to whoever waits; a store that recovers is used again.
            failed, self.failed = self.failed, None
            raise failed

    async def _flush_loop(self) -> None:
        try:
            while self._events or self._runs:
                events, self._events = self._events, []
                runs, self._runs = list(self._runs.values()), {}
                try:
                    await self.store.write(runs, events)
                except Exception as exc:
                    # Nothing unstored is ever shown: the batch is dropped from view,
                    # loudly, and the next sync() raises for whoever waits.
                    log.exception("store write failed; %d events not recorded", len(events))
                    self.failed = exc
                    continue
                self._publish(events)
        finally:
            self._flushing = None

    def _publish(self, events: list[Event]) -> None:
        for run_id, group in itertools.groupby(events, key=lambda e: e.run_id):
            batch = list(group)
            channel = self.channels.get(run_id)
            if channel is None:
                continue
            channel.publish(batch)
            if batch[-1].kind == EV_DONE:
                del self.channels[run_id]

    async def follow(self, run_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """Batches of a run's events with seq > ``after``: replay, then live, until done.

        Ends after the ``done`` event; for a run that is neither live here nor finished
        (another replica's, later) it polls the store.
        """
        last = after
        while True:
            channel = self.channels.get(run_id)
            batch = channel.since(last) if channel is not None else None
            if batch is None:
                batch = await self.store.events(run_id, last, PAGE)
            if batch:
                yield batch
                last = batch[-1].seq
                if batch[-1].kind == EV_DONE:
                    return
                continue
            if channel is not None:
                await channel.wait(last)
            elif run_id not in self.channels:
                run = await self.store.get(run_id)
                if run is None or (run.last_event <= last and run.finished is not None):
                    return
                await asyncio.sleep(0.2)

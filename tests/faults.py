"""Parts that fail on purpose, in place of the real ones: in a real server, or under a
journal or an executor running in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from runner.errors import StoreError
from runner.records import Event, RunRecord
from runner.store import SQLiteStore


class FaultyStore(SQLiteStore):
    """A real SQLite store whose writes fail while ``failing`` is set, as a full disk or a
    locked database would make them (set from the test's thread, read on the server's)."""

    def __init__(
        self, path: Path, reason: str = "disk full (simulated)", delay: float = 0.0
    ) -> None:
        super().__init__(path)
        self.reason = reason
        self.delay = delay  # seconds each write takes first (a slow or busy disk)
        self.failing = threading.Event()
        self.failed_writes: list[int] = []  # events in each refused batch

    async def write(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing.is_set():
            self.failed_writes.append(len(events))
            raise StoreError(self.reason)
        await super().write(runs, events)


class Disk(SQLiteStore):
    """A real SQLite store a test on the event loop can hold and break.

    ``hold()``: each write waits at a gate until ``let()`` lets it through (a slow disk,
    a database server's round trip), so a test can act while a write is in flight;
    ``parked`` counts the writes waiting there. ``broken``: writes fail as a full disk
    makes them fail (inline ``write_now`` too). ``lines(run_id)`` reads what a ``kill -9``
    would leave, through a connection of its own, without awaiting. ``pages`` counts the
    event pages read and ``gets`` the runs read: followers that keep up never read the
    store.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.broken: str | None = None
        self.failed = 0  # writes refused while broken
        self.writes = 0  # transactions committed
        self.pages = 0
        self.gets = 0
        self.parked = 0
        self._held = False
        self._gate: asyncio.Semaphore | None = None  # made on the loop, at first use
        self._arrivals: asyncio.Condition | None = None

    def hold(self) -> None:
        self._held = True

    def let(self, writes: int = 1) -> None:
        """Let ``writes`` held writes through (or the next ones, as they come)."""
        gate = self._semaphore()
        for _ in range(writes):
            gate.release()

    def free(self) -> None:
        """Stop holding: every write waiting goes through, and the next ones too."""
        self._held = False
        self.let(self.parked)

    async def until_parked(self, writes: int = 1) -> None:
        """Return once ``writes`` writes wait at the gate."""
        arrivals = self._condition()
        async with arrivals:
            await arrivals.wait_for(lambda: self.parked >= writes)

    def _semaphore(self) -> asyncio.Semaphore:
        if self._gate is None:
            self._gate = asyncio.Semaphore(0)
        return self._gate

    def _condition(self) -> asyncio.Condition:
        if self._arrivals is None:
            self._arrivals = asyncio.Condition()
        return self._arrivals

    async def write(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> None:
        if self._held:
            self.parked += 1
            async with self._condition():
                self._condition().notify_all()
            try:
                await self._semaphore().acquire()
            finally:
                self.parked -= 1
        self.write_now(runs, events)

    def write_now(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> None:
        if self.broken is not None:
            self.failed += 1
            raise StoreError(self.broken)
        super().write_now(runs, events)
        self.writes += 1

    async def events(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        self.pages += 1
        return await super().events(run_id, after, limit)

    async def get(self, run_id: str) -> RunRecord | None:
        self.gets += 1
        return await super().get(run_id)

    def lines(self, run_id: str) -> list[tuple[int, str]]:
        """(seq, data) of the run's events on disk now, in order."""
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            rows = db.execute(
                "SELECT seq, data FROM events WHERE run = (SELECT key FROM runs WHERE id = ?) "
                "ORDER BY seq",
                (run_id,),
            ).fetchall()
        return [(int(seq), str(data)) for seq, data in rows]

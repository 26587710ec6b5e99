"""Parts that fail on purpose, passed to a real server in place of the real ones."""

from __future__ import annotations

import asyncio
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

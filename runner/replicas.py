"""Replicas on one PostgreSQL store: the database-backed side of runner.coordination.

    start ─► heartbeat row ─► recovery (runs of silent peers, or of a predecessor on
             this host whose process is gone) ─► LISTEN ─► two loops:
    beat  every lease_timeout/3: heartbeat, sweep silent peers (their runs interrupted,
          exactly once), cancels asked of this replica, submissions claimed elsewhere
    claim on a doorbell (a run queued, a lock key freed, a slot freed here) or every
          second: SKIP LOCKED claims up to the free slots; the executor starts them
    stop  ─► queued runs back to the shared queue, the heartbeat row gone

Followers of a run held by another replica mark it watched, then wait on the events
doorbell (one NOTIFY per committed batch holding a watched run, carrying each run's last
number): the table is the truth, the NOTIFY only says when to read it. A missed doorbell
costs at most a poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

from runner import lease
from runner.coordination import Attached, Resubmit
from runner.errors import Conflict, NotFound
from runner.records import FINAL, RunRecord
from runner.store.postgres import EVENTS_CHANNEL, QUEUE_CHANNEL, PostgresStore
from runner.store.postgres_replicas import CANCEL_CHANNEL, Board

log = logging.getLogger("runner.replicas")

POLL = 1.0  # seconds between claims and follower reads without a doorbell
CANCEL_WAIT = 10.0  # a cancel asked of another replica: how long to wait for its `done`
_SEEN = 4096  # runs whose last announced event number is remembered


class Replicas(Attached):
    """Coordination through the database (see the module docstring)."""

    shared = True

    def __init__(self, store: PostgresStore, lease_timeout: float) -> None:
        # A server serves the shared queue; `runner run` in a terminal (started without
        # recovery) takes no one else's runs, and leaves none of its own to others.
        self.serving = False
        self.store = store
        self.lease_timeout = lease_timeout
        self.owner = lease.claim()
        self.board = Board(store, self.owner, lease_timeout)
        self._live: set[str] = {self.owner}
        self._wake = asyncio.Event()
        # The shared queue may hold runs for us: set by its doorbell, a submission to it
        # from here, and each poll; cleared when a claim finds fewer than it could take.
        # A slot freed alone makes no run claimable: no claim (a transaction) per run.
        self._pending = True
        self._bells: dict[str, asyncio.Event] = {}
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._watched: OrderedDict[str, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._cancelling: set[asyncio.Task[None]] = set()
        self._listener: Any = None
        self._resubmit: Resubmit | None = None

    def alive(self, owner: str) -> bool:
        return owner in self._live

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, resubmit: Resubmit, *, recover: bool) -> None:
        self._resubmit = resubmit
        self.serving = recover
        self._live = await self.board.heartbeat()
        if recover:
            # A predecessor on this host whose process is gone (a restart after kill -9)
            # is recovered now, not after the lease timeout; a peer elsewhere only then.
            recovered = await self.board.sweep(gone=_gone_here)
            if recovered:
                log.warning("recovered the runs of stopped replicas: %s", ", ".join(recovered))
        await self._listen()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._beat()), loop.create_task(self._claims())]
        self.schedule()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        try:
            await self.board.leave()
        except Exception as exc:  # the store is down: peers recover it after the lease
            log.warning("could not leave the replicas cleanly: %s", exc)
        lease.release(self.owner)

    async def _listen(self) -> None:
        conn = await self.store.connect()
        await conn.add_listener(EVENTS_CHANNEL, self._on_events)
        await conn.add_listener(QUEUE_CHANNEL, self._on_queue)
        await conn.add_listener(CANCEL_CHANNEL, self._on_cancel)
        self._listener = conn

    # -- doorbells ---------------------------------------------------------------------

    def _on_events(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        payload = str(payload)
        if payload == "*":
            for bell in self._bells.values():
                bell.set()
            return
        for item in payload.split():
            run_id, _, seq = item.rpartition(":")
            self._seen[run_id] = int(seq)
            self._seen.move_to_end(run_id)
            waiting = self._bells.get(run_id)
            if waiting is not None:
                waiting.set()
        while len(self._seen) > _SEEN:
            self._seen.popitem(last=False)

    def _on_queue(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self._pending = True
        self._wake.set()

    def _on_cancel(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        run_id = str(payload)
        if self._holds(run_id):
            task = asyncio.get_running_loop().create_task(self._cancel_here(run_id, None))
            self._cancelling.add(task)  # a reference, so that the task is not collected
            task.add_done_callback(self._cancelling.discard)

    def _holds(self, run_id: str) -> bool:
        return self.executor.live(run_id) is not None or run_id in self.executor.shared

    async def wait_remote(self, run_id: str, after: int) -> None:
        if self._seen.get(run_id, 0) > after:
            return
        if run_id not in self._watched:
            # First wait for this run: ask its writer to ring from now on, then return
            # so that the follower reads the table once more (nothing committed between
            # that read and the mark goes unseen).
            await self.store.watch(run_id)
            self._watched[run_id] = None
            while len(self._watched) > _SEEN:
                self._watched.popitem(last=False)
            return
        bell = self._bells.setdefault(run_id, asyncio.Event())
        try:
            async with asyncio.timeout(POLL):
                await bell.wait()
        except TimeoutError:
            pass
        finally:
            if self._bells.get(run_id) is bell and bell.is_set():
                del self._bells[run_id]

    # -- the queue ---------------------------------------------------------------------

    def schedule(self) -> None:
        ex = self.executor
        ex.pump()
        if ex.shared:
            self._pending = True  # a run queued from here waits in the shared queue
        if self._pending and ex.free_slots:
            self._wake.set()

    async def _claims(self) -> None:
        while True:
            try:
                async with asyncio.timeout(POLL):
                    await self._wake.wait()
            except TimeoutError:
                self._pending = True  # a missed doorbell costs at most a poll
            self._wake.clear()
            if not self._pending:
                continue
            try:
                await self._claim_once()
            except Exception as exc:
                log.warning("claiming queued runs failed: %s", exc)
                await asyncio.sleep(POLL)

    async def _claim_once(self) -> None:
        ex = self.executor
        while (free := ex.free_slots) > 0:
            mine = [i for i, a in ex.shared.items() if a.run.owner == self.owner]
            # Cleared first: a doorbell that rings during the claim sets it again.
            self._pending = False
            claimed = await self.board.claim(free, mine, others=self.serving)
            if len(claimed) == free:
                self._pending = True  # there may be more
            if not claimed:
                return
            assert self._resubmit is not None
            await ex.adopt(claimed, self._resubmit)

    # -- heartbeats and recovery -------------------------------------------------------

    async def _beat(self) -> None:
        every = max(0.2, self.lease_timeout / 3)
        while True:
            await asyncio.sleep(every)
            try:
                await self._beat_once()
            except Exception as exc:
                log.warning("replica heartbeat failed: %s", exc)

    async def _beat_once(self) -> None:
        ex = self.executor
        self._live = await self.board.heartbeat(draining=ex.draining)
        recovered = await self.board.sweep() if self.serving else []
        if recovered:
            log.warning("replicas gone silent, their runs recovered: %s", ", ".join(recovered))
        for run_id, reason in await self.board.cancels():
            if self._holds(run_id):
                await self._cancel_here(run_id, reason)
        if ex.shared:
            for run_id in await self.board.claimed_elsewhere(list(ex.shared)):
                ex.taken_elsewhere(run_id)
        if self._listener is None or self._listener.is_closed():
            self._listener = None
            await self._listen()

    async def _cancel_here(self, run_id: str, reason: str | None) -> None:
        if reason is None:
            run = await self.store.get(run_id)
            reason = (run.reason if run is not None else None) or "cancelled by request"
            cancels = dict(await self.board.cancels())
            reason = cancels.get(run_id, reason)
        with contextlib.suppress(Conflict, NotFound):
            await self.executor.cancel(run_id, reason)

    # -- cancel ------------------------------------------------------------------------

    async def cancel_elsewhere(self, run_id: str, reason: str) -> RunRecord:
        """A queued run is cancelled here unless a replica claims it first; a running one
        (or one queued on a replica holding its secrets) is asked of its holder, and
        awaited until it ends (its `done` is the answer)."""
        run = await self.store.get(run_id)
        if run is None:
            raise NotFound(f"no run {run_id}")
        if run.state in FINAL:
            raise Conflict(f"run {run_id} already ended: {run.state}")
        cancelled = await self.board.cancel_queued(run_id, reason)
        if not cancelled and not await self.board.ask_cancel(run_id, reason):
            return await self._ended(run_id)
        deadline = time.monotonic() + CANCEL_WAIT
        while time.monotonic() < deadline:
            run = await self.store.get(run_id)
            if run is None or run.state in FINAL:
                break
            await self.wait_remote(run_id, run.last_event)
        return await self._ended(run_id)

    async def _ended(self, run_id: str) -> RunRecord:
        run = await self.store.get(run_id)
        if run is None:
            raise NotFound(f"no run {run_id}")
        return run


def _gone_here(owner: str) -> bool:
    """A holder on this host whose process is gone (its lease says so from /proc)."""
    import socket

    host = owner.split(":", 1)[0]
    return host == socket.gethostname() and not lease.alive(owner)

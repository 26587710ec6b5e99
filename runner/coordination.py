"""Coordination: how one executor shares the work with the others on its store — the seam.

    SingleProcess   (SQLite) the queue, lock keys and run ownership live in this process;
                    a run's holder is alive while its process is (runner.lease, /proc).
    Replicas        (PostgreSQL, runner.replicas) the queue and lock keys live in the
                    database; replicas heartbeat, claim runs with SKIP LOCKED, recover a
                    dead peer's runs, follow and cancel any run.

The executor calls the same few operations whichever it has; neither is an ``if``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from runner import lease
from runner.errors import Conflict, NotFound
from runner.records import FINAL, RunRecord

if TYPE_CHECKING:
    from runner.kinds import Submission
    from runner.store import Store

# Recovery (and a replica claiming a run queued elsewhere) asks for a run again as a
# Submission — or for the reason it cannot run any more.
Resubmit = Callable[[RunRecord], Awaitable["Submission | str"]]


class Waiting(Protocol):
    """A run submitted here that waits in the replicas' shared queue."""

    @property
    def run(self) -> RunRecord: ...


class Coordinated(Protocol):
    """What a coordination drives of the executor it is attached to. runner.executor's
    Executor is the one; it is named by what it offers so that this seam points down."""

    @property
    def store(self) -> Store: ...

    @property
    def draining(self) -> bool: ...

    @property
    def free_slots(self) -> int: ...

    @property
    def shared(self) -> Mapping[str, Waiting]: ...

    def pump(self) -> None: ...

    def live(self, run_id: str) -> RunRecord | None: ...

    def taken_elsewhere(self, run_id: str) -> None: ...

    async def cancel(self, run_id: str, reason: str = ...) -> RunRecord: ...

    async def recover(self, resubmit: Resubmit) -> None: ...

    async def adopt(self, claimed: list[RunRecord], resubmit: Resubmit) -> None: ...


class Coordination(Protocol):
    """What an executor needs to know of the others sharing its store."""

    #: this executor's lease on the runs it holds (``RunRecord.owner``)
    owner: str
    #: queued runs wait in a queue any replica may claim from (else in this process)
    shared: bool
    #: this executor serves others' runs too (a server, not `runner run` in a terminal)
    serving: bool

    def attach(self, executor: Coordinated) -> None:
        """Bind to the executor whose runs this coordinates (once, at construction)."""
        ...

    def alive(self, owner: str) -> bool:
        """Whether the executor holding a lease ``owner`` still runs (anywhere)."""
        ...

    async def start(self, resubmit: Resubmit, *, recover: bool) -> None:
        """Begin (heartbeats, listening); with ``recover``, take over what stopped
        executors left: running runs interrupted, queued ones queued again."""
        ...

    def schedule(self) -> None:
        """Something may be startable now (a run queued, a slot or a lock key freed)."""
        ...

    async def cancel_elsewhere(self, run_id: str, reason: str) -> RunRecord:
        """Cancel a run this executor does not hold (NotFound, Conflict when it ended)."""
        ...

    async def wait_remote(self, run_id: str, after: int) -> None:
        """Until an event after ``after`` of a run held elsewhere may be stored (a
        doorbell, or a poll interval); the store is the truth."""
        ...

    async def stop(self) -> None:
        """Give the lease back (queued runs stay queued for the others or the next start)."""
        ...


class Attached:
    """The executor a coordination drives, bound once at its construction."""

    _executor: Coordinated | None = None

    @property
    def executor(self) -> Coordinated:
        if self._executor is None:
            raise RuntimeError("coordination used before its executor was attached")
        return self._executor

    def attach(self, executor: Coordinated) -> None:
        self._executor = executor


class SingleProcess(Attached):
    """Everything in this process (SQLite's store is one host's file)."""

    shared = False
    serving = True

    def __init__(self) -> None:
        self.owner = lease.claim()

    def alive(self, owner: str) -> bool:
        return lease.alive(owner)

    async def start(self, resubmit: Resubmit, *, recover: bool) -> None:
        if recover:
            await self.executor.recover(resubmit)

    def schedule(self) -> None:
        self.executor.pump()

    async def cancel_elsewhere(self, run_id: str, reason: str) -> RunRecord:
        run = await self.executor.store.get(run_id)
        if run is None:
            raise NotFound(f"no run {run_id}")
        if run.state in FINAL:
            raise Conflict(f"run {run_id} already ended: {run.state}")
        raise Conflict(f"run {run_id} is not handled by this runner process")

    async def wait_remote(self, run_id: str, after: int) -> None:
        # A run of another process on this host (`runner run`): poll the file.
        await asyncio.sleep(0.2)

    async def stop(self) -> None:
        lease.release(self.owner)

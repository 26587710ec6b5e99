"""The executor: queues runs, runs them under limits, and records how they end.

    submit ──► queued ──(slot free and lock key free)──► running ──► succeeded | failed
                 │                                          │        cancelled | timed_out
                 └── cancel ─► cancelled                    └── cancel / timeout / drain

Limits: ``max_running`` runs at once; ``max_queued`` waiting (more → Busy, with a
retry time); runs sharing a lock key run one at a time, in arrival order. A run's task
belongs to the executor, never to a request: a caller that disconnects stops nothing.
The job's kind executes it (:meth:`runner.kinds.Job.invoke`); the executor only times it,
cancels it and records the outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Collection
from typing import Any

from runner.coordination import Coordination, Resubmit, SingleProcess
from runner.errors import Busy, Draining
from runner.execution import Active, label, run_job, sink_for
from runner.failures import describe
from runner.hooks import Extensions
from runner.journal import Journal
from runner.kinds import Host, Submission
from runner.output import masker
from runner.records import (
    CANCELLED,
    EV_DONE,
    EV_ERROR,
    EV_RUN,
    EV_STATUS,
    EXIT_CANCELLED,
    EXIT_TIMED_OUT,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    RUNNING_STATUS,
    SUCCEEDED,
    TIMED_OUT,
    RunRecord,
    Trigger,
    new_run_id,
)
from runner.settings import LimitSettings
from runner.store.base import Store

log = logging.getLogger("runner.runs")


class Executor:
    """Owns every live run of this process."""

    def __init__(
        self,
        limits: LimitSettings,
        store: Store,
        journal: Journal,
        host: Host,
        extensions: Extensions,
        coordination: Coordination | None = None,
    ) -> None:
        self.limits = limits
        self.store = store
        self.journal = journal
        self.host = host
        self.extensions = extensions
        self.queue: dict[str, Active] = {}
        # Runs submitted here that wait in the replicas' shared queue (any may claim them).
        self.shared: dict[str, Active] = {}
        self.running: dict[str, Active] = {}
        self.locks: set[str] = set()
        self.draining = False
        self._hurry = asyncio.Event()
        # How this executor shares the work with others on its store (runner.coordination);
        # its lease on the runs it holds.
        self.coord: Coordination = coordination or SingleProcess()
        self.coord.attach(self)
        self.owner = self.coord.owner
        journal.remote_wait = self.coord.wait_remote
        journal.on_fenced = self._fenced
        self._avg_duration = 1.0
        # Jobs given up on (they ignored their cancellation): kept until they end.
        self._abandoned: set[asyncio.Task[int]] = set()

    # -- submission ------------------------------------------------------------------

    async def submit(
        self,
        sub: Submission,
        caller: str,
        *,
        trigger: Trigger | None = None,
        durable: bool,
        run_id: str | None = None,
    ) -> RunRecord:
        """Create the run and queue it. Raises Draining or Busy.

        ``durable``: return only once the record is stored (the caller is about to show
        the id). Without it, the caller must show nothing before the run's first event
        comes out of ``journal.follow`` — which yields committed events only.
        """
        if self.draining:
            raise Draining(
                "the runner is shutting down and takes no new runs; retry on another replica",
                retry_after=5,
            )
        can_start = len(self.running) < self.limits.max_running and (
            sub.lock_key is None or sub.lock_key not in self.locks
        )
        waiting = len(self.queue) + len(self.shared)
        if not can_start and waiting >= self.limits.max_queued:
            wait = self._avg_duration * (waiting + 1) / self.limits.max_running
            retry = max(1, min(60, math.ceil(wait)))
            raise Busy(
                f"{waiting} runs are already waiting (limit {self.limits.max_queued}); "
                f"retry in {retry} s",
                retry_after=retry,
            )
        mask = masker(sub.secrets + list(self.host.masked))
        # Replicas: a run this one cannot start at once (or with a lock key, which only
        # the database can grant across replicas) goes to the shared queue, unowned — but
        # one with secrets stays with this process, the only one that has them.
        shared = self.coord.shared and not (can_start and sub.lock_key is None)
        run = RunRecord(
            id=run_id or new_run_id(),
            job=sub.job.path,
            state=QUEUED,
            params=sub.recorded,
            caller=caller,
            created=time.time(),
            timeout=sub.timeout,
            lock_key=mask(sub.lock_key) if sub.lock_key is not None else None,
            had_secrets=sub.had_secrets,
            owner="" if shared and self.coord.serving and not sub.had_secrets else self.owner,
            body=sub.stored_body,
            trigger=trigger or Trigger(),
        )
        self.journal.open(run)
        self.journal.emit(run, EV_RUN, json.dumps(_run_event(run)))
        # The record must exist before anyone is told its id. While the store is failing,
        # every caller waits for that, so that it gets the refusal instead of a silent wait.
        try:
            if durable or self.journal.failing:
                await self.journal.sync()
        except Exception:
            # Refused to the caller: the run must not be written later, when the store heals.
            self.journal.discard(run.id)
            raise
        if shared:
            self.shared[run.id] = Active(run, sub, mask)
            self.coord.schedule()
            return run
        self.queue[run.id] = Active(run, sub, mask)
        self.pump()
        if run.id in self.queue:
            # Logged only when it waits: most runs start at once, and "started" says so.
            log.info("%s queued", label(run), extra={"run_id": run.id, "event": "queued"})
            why = (
                f"waiting for lock {run.lock_key}"
                if sub.lock_key in self.locks
                else f"waiting for a free slot ({self.limits.max_running} runs at once)"
            )
            self.journal.emit(run, EV_STATUS, json.dumps({"state": QUEUED, "message": why}))
        return run

    # -- scheduling ------------------------------------------------------------------

    def pump(self) -> None:
        """Start every queued run that has a slot and whose lock is free, oldest first."""
        if self.draining:
            return
        for run_id, active in list(self.queue.items()):
            if len(self.running) >= self.limits.max_running:
                break
            key = active.lock
            if key is not None and key in self.locks:
                continue
            del self.queue[run_id]
            self._start(active)

    def _start(self, active: Active) -> None:
        if active.lock is not None:
            self.locks.add(active.lock)
        self.running[active.run.id] = active
        active.task = asyncio.get_running_loop().create_task(self._execute(active))

    @property
    def free_slots(self) -> int:
        return 0 if self.draining else max(0, self.limits.max_running - len(self.running))

    def taken_elsewhere(self, run_id: str) -> None:
        """A run queued here was claimed by another replica: it is not this one's to start."""
        self.shared.pop(run_id, None)

    async def adopt(self, claimed: list[RunRecord], resubmit: Resubmit) -> None:
        """Start runs claimed from the replicas' shared queue (their lock keys granted):
        one submitted here goes on with its Submission, another is admitted again."""
        for run in claimed:
            active = self.shared.pop(run.id, None)
            if active is None:
                again = await resubmit(run)
                if isinstance(again, str):
                    self.journal.open(run)
                    self._interrupt(run, time.time(), again)
                    continue
                self.journal.open(run)
                active = Active(run, again, masker(again.secrets + list(self.host.masked)))
                log.info("%s claimed from the shared queue", label(run),
                         extra={"run_id": run.id})  # fmt: skip
            active.run.owner = self.owner
            self._start(active)

    def _fenced(self, run_ids: Collection[str]) -> None:
        """Runs another replica took from this one (it found this one dead): stop them
        here without a word more to the store (their writes are refused anyway)."""
        for run_id in run_ids:
            active = self.running.get(run_id) or self.queue.get(run_id)
            if active is None:
                continue
            log.error("%s was taken over by another replica; stopping it here", label(active.run),
                      extra={"run_id": run_id})  # fmt: skip
            active.closed = True
            if active.task is not None:
                active.cancel_reason = "taken over by another replica"
                active.task.cancel()

    async def _execute(self, active: Active) -> None:
        run = active.run
        run.state = RUNNING
        run.started = time.time()
        self.journal.emit(run, EV_STATUS, RUNNING_STATUS)
        self.journal.hold(run.id)
        log.info("%s started", label(run), extra={"run_id": run.id, "event": "started"})
        sink = sink_for(active, self.journal, self.limits.max_output_bytes)
        state, code, reason = FAILED, 1, None
        try:
            # Its job acts only once the store says `running` (text mode shows a run
            # before its record is stored; usually one commit holds both).
            await self.journal.recorded(run.id)
            code = await run_job(active, sink, self.host, self._abandoned)
            state = SUCCEEDED if code == 0 else FAILED
            if code != 0:
                reason = f"exited with code {code}"
        except TimeoutError:
            state, code = TIMED_OUT, EXIT_TIMED_OUT
            reason = f"timed out after {run.timeout:g} s" + active.abandoned
        except asyncio.CancelledError:
            state, code = CANCELLED, EXIT_CANCELLED
            reason = (active.cancel_reason or "cancelled") + active.abandoned
            if active.overflow:
                state, code, reason = FAILED, 1, active.overflow
        except Exception as exc:
            failure = describe(exc, active.mask, self.extensions.explain)
            for line in failure.lines:
                sink(EV_ERROR, line)
            if failure.unexpected:
                log.warning("%s raised %s", label(run), failure.reason, extra={"run_id": run.id})
            state, code, reason = FAILED, failure.exit_code, failure.reason
        self._finish(active, state, code, reason)

    def _finish(self, active: Active, state: str, code: int | None, reason: str | None) -> None:
        active.closed = True
        run = active.run
        run.state = state
        run.exit_code = code
        run.reason = reason
        run.finished = time.time()
        duration = run.duration or 0.0
        self.journal.emit(
            run,
            EV_DONE,
            json.dumps({"state": state, "exit_code": code, "duration": duration, "reason": reason}),
        )
        self.running.pop(run.id, None)
        self.queue.pop(run.id, None)
        if active.lock is not None and active.task is not None:
            self.locks.discard(active.lock)
        self._avg_duration = 0.9 * self._avg_duration + 0.1 * duration
        active.done.set()
        log.info(
            "%.3fs %s %s%s",
            duration,
            label(run),
            state,
            f" ({reason})" if reason else "",
            extra={"run_id": run.id, "event": state, "duration": duration},
        )
        self.coord.schedule()

    # -- control ---------------------------------------------------------------------

    def live(self, run_id: str) -> RunRecord | None:
        """The live record of a run this process holds (fresher than the store's)."""
        active = self.running.get(run_id) or self.queue.get(run_id)
        return active.run if active is not None else None

    async def cancel(self, run_id: str, reason: str = "cancelled by request") -> RunRecord:
        """Cancel a queued or running run; Conflict if it already ended."""
        active = self.queue.get(run_id) or self.running.get(run_id)
        if active is None:
            # Held elsewhere: another replica, or the shared queue (even when submitted
            # here, another replica may be claiming it right now).
            run = await self.coord.cancel_elsewhere(run_id, reason)
            self.shared.pop(run_id, None)
            return run
        active.cancel_reason = reason
        if active.task is None:
            self._finish(active, CANCELLED, EXIT_CANCELLED, reason)
        else:
            active.task.cancel()
            await asyncio.shield(active.done.wait())
        await self.journal.sync()
        return active.run

    async def recover(self, resubmit: Resubmit) -> None:
        """Runs found running are ``interrupted``; queued ones are queued again.

        Only runs whose lease holder is gone: a live process on this host (``runner run``
        in a terminal) keeps its runs.
        """
        now = time.time()
        alive = self.coord.alive
        for run in await self.store.list_runs(states=[RUNNING], limit=1_000_000):
            if alive(run.owner):
                continue
            reason = "the runner process stopped while this run was running"
            self._interrupt(run, now, reason)
            log.warning("%s interrupted", label(run), extra={"run_id": run.id})
        queued = await self.store.list_runs(states=[QUEUED], limit=1_000_000)
        for run in reversed(queued):  # oldest first
            if alive(run.owner):
                continue  # queued in another live process: it will run it
            run.owner = self.owner
            again = await resubmit(run)
            if isinstance(again, str):
                self._interrupt(run, now, again)
                continue
            self.journal.open(run)
            self.journal.save(run)  # records the new lease holder
            self.queue[run.id] = Active(run, again, masker(again.secrets + list(self.host.masked)))
            log.info("%s queued again after restart", label(run), extra={"run_id": run.id})
        await self.journal.sync()
        self.pump()

    def _interrupt(self, run: RunRecord, now: float, reason: str) -> None:
        """End a run this process found at start and cannot run (its duration: None if it
        never started)."""
        run.state, run.finished, run.reason = INTERRUPTED, now, reason
        body = {"state": INTERRUPTED, "exit_code": None, "duration": run.duration}
        body["reason"] = reason
        self.journal.emit(run, EV_DONE, json.dumps(body))

    async def drain(self, deadline: float) -> None:
        """Stop taking runs; let running ones finish for ``deadline`` s; cancel the rest.

        Queued runs stay queued in the store and run after the next start.
        """
        self.draining = True
        running = [a for a in self.running.values() if a.task is not None]
        log.info("draining: %d running, %d queued", len(running), len(self.queue))
        if running:
            waiters = [asyncio.ensure_future(a.done.wait()) for a in running]
            # A second signal (hurry) ends the wait early; the runs are cancelled below.
            hurry = asyncio.ensure_future(self._hurry.wait())
            all_done = asyncio.ensure_future(asyncio.wait(waiters))
            await asyncio.wait([all_done, hurry], timeout=deadline, return_when="FIRST_COMPLETED")
            for w in [*waiters, hurry, all_done]:
                w.cancel()
        for active in list(self.running.values()):
            await self.cancel(
                active.run.id,
                f"the runner shut down before the run finished ({deadline:g} s drain)",
            )
        await self.journal.sync()

    def hurry(self) -> None:
        """End a drain's wait now: running runs are cancelled and recorded at once."""
        self._hurry.set()

    async def close(self) -> None:
        """Cancel and record what still runs; give the lease back."""
        # Nothing queued starts as the running runs end: it stays queued in the store for
        # the next start (a cancelled run's end would otherwise start one on a closing store).
        self.draining = True
        for active in list(self.running.values()):
            await self.cancel(active.run.id, "the runner stopped")
        await self.journal.sync()
        await self.coord.stop()
        for job in list(self._abandoned):
            # The last resort, at shutdown: a job that ignored every cancellation would
            # keep the process from ever exiting (the loop waits for its tasks). Closing
            # its coroutine raises GeneratorExit where it waits, which it rarely catches.
            try:
                job.get_coro().close()
            except Exception:
                log.exception("an abandoned job could not be closed; the process may hang")


def _run_event(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "job": run.job,
        "state": run.state,
        "params": run.params,
        "timeout": run.timeout,
        "links": run.links(),
    }

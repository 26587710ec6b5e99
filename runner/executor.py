"""The executor: admits runs, queues them, runs them under limits, and records the end.

    submit ──► queued ──(slot free and lock key free)──► running ──► succeeded | failed
                 │                                          │        cancelled | timed_out
                 └── cancel ─► cancelled                    └── cancel / timeout / drain

Limits: ``max_running`` runs at once; ``max_queued`` waiting (more → 429 with
Retry-After); runs sharing a lock key run one at a time, in arrival order. A run's
task belongs to the executor, never to a request: a caller that disconnects stops nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner import admission, owner, scripts
from runner.admission import Submission
from runner.catalogue import Catalogue, Job
from runner.context import Context, Services, masker
from runner.errors import (
    Conflict,
    JobError,
    NotFound,
    ParameterError,
    QueueFull,
    RunnerError,
    Unavailable,
)
from runner.journal import Journal
from runner.params import Limits
from runner.records import (
    CANCELLED,
    EV_DONE,
    EV_ERROR,
    EV_RUN,
    EV_STATUS,
    EXIT_CANCELLED,
    EXIT_TIMED_OUT,
    FAILED,
    FINAL,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    RunRecord,
    new_run_id,
)
from runner.settings import Settings
from runner.store.base import Store

log = logging.getLogger("runner.runs")
_RUNNING_STATUS = json.dumps({"state": RUNNING})


@dataclass
class Active:
    """A run this process is responsible for (queued or running)."""

    run: RunRecord
    sub: Submission
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


class Executor:
    """Owns every live run of this process."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        store: Store,
        *,
        services: Services | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.store = store
        self.journal = Journal(store)
        self.services = services
        self.limits = Limits(settings.max_params, settings.max_param_bytes)
        self.script_env = scripts.base_env(environ if environ is not None else {})
        if services is not None:
            self.script_env.update(services.script_env())
        self.queue: dict[str, Active] = {}
        self.running: dict[str, Active] = {}
        self.locks: set[str] = set()
        self.draining = False
        self._hurry = asyncio.Event()
        # This executor's id on the runs it owns (see runner.owner).
        self.owner = owner.claim()
        self._avg_duration = 1.0
        self._pruner: asyncio.Task[None] | None = None

    # -- admission -------------------------------------------------------------------

    def prepare(
        self, job: Job, raw: Mapping[str, Any], *, body: bytes = b"", timeout: Any = None
    ) -> Submission:
        """Validate everything about a request; raise ParameterError listing each problem."""
        return admission.prepare(
            job, raw, self.settings, self.limits, self.script_env, body=body, timeout=timeout
        )

    async def submit(
        self, sub: Submission, caller: str, *, durable: bool = True, run_id: str | None = None
    ) -> RunRecord:
        """Create the run and queue it. Raises Unavailable or QueueFull.

        ``durable``: return only once the record is stored (the caller is about to show
        the id). Without it, the caller must show nothing before the run's first event
        comes out of ``journal.follow`` — which yields committed events only.
        """
        if self.draining:
            raise Unavailable(
                "the runner is shutting down and takes no new runs; retry on another replica",
                headers={"Retry-After": "5"},
            )
        can_start = len(self.running) < self.settings.max_running and (
            sub.lock_key is None or sub.lock_key not in self.locks
        )
        if not can_start and len(self.queue) >= self.settings.max_queued:
            wait = self._avg_duration * (len(self.queue) + 1) / self.settings.max_running
            retry = max(1, min(60, math.ceil(wait)))
            raise QueueFull(
                f"{len(self.queue)} runs are already waiting (limit {self.settings.max_queued}); "
                f"retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        run = RunRecord(
            id=run_id or new_run_id(),
            job=sub.job.path,
            state=QUEUED,
            params=sub.recorded,
            caller=caller,
            created=time.time(),
            timeout=sub.timeout,
            lock_key=sub.lock_key,
            had_secrets=sub.had_secrets,
            owner=self.owner,
        )
        active = Active(run, sub)
        self.journal.open(run)
        self.journal.emit(run, EV_RUN, json.dumps(self._run_event(run)))
        # The record must exist before anyone is told its id. While the store is failing,
        # every caller waits for that, so that it gets the 503 instead of a silent wait.
        try:
            if durable or self.journal.failing:
                await self.journal.sync()
        except Exception:
            # Refused to the caller: the run must not be written later, when the store heals.
            self.journal.discard(run.id)
            raise
        self.queue[run.id] = active
        self._pump()
        if run.id in self.queue:
            # Logged only when it waits: most runs start at once, and "started" says so.
            log.info("%s queued", self._label(run), extra={"run_id": run.id, "event": "queued"})
            why = (
                f"waiting for lock {run.lock_key}"
                if run.lock_key in self.locks
                else f"waiting for a free slot ({self.settings.max_running} runs at once)"
            )
            self.journal.emit(run, EV_STATUS, json.dumps({"state": QUEUED, "message": why}))
        return run

    def _run_event(self, run: RunRecord) -> dict[str, Any]:
        return {
            "id": run.id,
            "job": run.job,
            "state": run.state,
            "params": run.params,
            "timeout": run.timeout,
            "links": run.links(),
        }

    @staticmethod
    def _label(run: RunRecord) -> str:
        return f"{run.id} {run.job}({_fmt_params(run.params)})"

    # -- scheduling ------------------------------------------------------------------

    def _pump(self) -> None:
        """Start every queued run that has a slot and whose lock is free, oldest first."""
        if self.draining:
            return
        for run_id, active in list(self.queue.items()):
            if len(self.running) >= self.settings.max_running:
                break
            key = active.run.lock_key
            if key is not None and key in self.locks:
                continue
            del self.queue[run_id]
            if key is not None:
                self.locks.add(key)
            self.running[run_id] = active
            active.task = asyncio.get_running_loop().create_task(self._execute(active))

    async def _execute(self, active: Active) -> None:
        run, sub = active.run, active.sub
        run.state = RUNNING
        run.started = time.time()
        self.journal.emit(run, EV_STATUS, _RUNNING_STATUS)
        log.info("%s started", self._label(run), extra={"run_id": run.id, "event": "started"})
        mask = masker(sub.secrets)

        def sink(kind: str, data: str) -> None:
            self.journal.emit(run, kind, data)

        state, code, reason = FAILED, 1, None
        try:
            async with asyncio.timeout(run.timeout):
                code = await self._invoke(active, sink, mask)
            state = SUCCEEDED if code == 0 else FAILED
            if code != 0:
                reason = f"exited with code {code}"
        except TimeoutError:
            state, code = TIMED_OUT, EXIT_TIMED_OUT
            reason = f"timed out after {run.timeout:g} s"
        except asyncio.CancelledError:
            state, code = CANCELLED, EXIT_CANCELLED
            reason = active.cancel_reason or "cancelled"
        except JobError as exc:
            state, code, reason = FAILED, exc.exit_code, str(exc)
            sink(EV_ERROR, mask(str(exc)))
        except Exception as exc:
            state, code = FAILED, 1
            explained = self._explain(exc)
            if explained is not None:
                # A known failure (no identity, a missing role…): words, not a traceback.
                reason = mask(explained.splitlines()[0])
                for line in explained.splitlines():
                    sink(EV_ERROR, mask(line))
            else:
                reason = mask(f"{type(exc).__name__}: {exc}")
                for line in traceback.format_exception(exc):
                    for part in line.rstrip("\n").split("\n"):
                        sink(EV_ERROR, mask(part))
            log.warning("%s raised %s", self._label(run), reason, extra={"run_id": run.id})
        self._finish(active, state, code, reason)

    def _explain(self, exc: BaseException) -> str | None:
        if isinstance(exc, RunnerError):
            return str(exc)
        return self.services.explain(exc) if self.services is not None else None

    async def _invoke(self, active: Active, sink: Any, mask: Any) -> int:
        run, sub = active.run, active.sub
        if sub.job.kind == "python":
            ctx = Context(
                run_id=run.id,
                job=run.job,
                params=run.params,
                sink=sink,
                secrets=sub.secrets,
                services=self.services,
                timeout=run.timeout,
            )
            try:
                result = await sub.job.func(ctx, **sub.values)
            except asyncio.CancelledError:
                ctx.cancelled.set()
                raise
            return result if isinstance(result, int) and not isinstance(result, bool) else 0
        env = dict(self.script_env)
        env.update(sub.values)
        env.update(RUNNER_RUN_ID=run.id, RUNNER_JOB=run.job)

        def emit(kind: str, line: str) -> None:
            sink(kind, mask(line))

        return await scripts.run_script(
            sub.job.file, env=env, body=sub.body, emit=emit, kill_grace=self.settings.kill_grace
        )

    def _finish(self, active: Active, state: str, code: int | None, reason: str | None) -> None:
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
        if run.lock_key is not None and active.task is not None:
            self.locks.discard(run.lock_key)
        self._avg_duration = 0.9 * self._avg_duration + 0.1 * duration
        active.done.set()
        log.info(
            "%.3fs %s %s%s",
            duration,
            self._label(run),
            state,
            f" ({reason})" if reason else "",
            extra={"run_id": run.id, "event": state, "duration": duration},
        )
        self._pump()

    # -- control ---------------------------------------------------------------------

    async def record(self, run_id: str) -> RunRecord | None:
        """A run's record: the live one when this process holds it (fresher than the
        store's last flush), else the stored one."""
        active = self.running.get(run_id) or self.queue.get(run_id)
        return active.run if active is not None else await self.store.get(run_id)

    async def cancel(self, run_id: str, reason: str = "cancelled by request") -> RunRecord:
        """Cancel a queued or running run; 409 if it already ended."""
        active = self.queue.get(run_id) or self.running.get(run_id)
        if active is None:
            run = await self.store.get(run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if run.state in FINAL:
                raise Conflict(f"run {run_id} already ended: {run.state}")
            raise Conflict(f"run {run_id} is not handled by this runner process")
        active.cancel_reason = reason
        if active.task is None:
            self._finish(active, CANCELLED, EXIT_CANCELLED, reason)
        else:
            active.task.cancel()
            await asyncio.shield(active.done.wait())
        await self.journal.sync()
        return active.run

    async def start(self) -> None:
        """Recover from the last process, then keep the history pruned."""
        await self.recover()
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())

    async def recover(self) -> None:
        """Runs found running are ``interrupted``; queued ones are queued again."""
        now = time.time()
        for run in await self.store.list_runs(states=[RUNNING], limit=1_000_000):
            if owner.alive(run.owner):
                continue  # a live process (`runner run` in a terminal) still runs it
            run.state, run.finished = INTERRUPTED, now
            run.reason = "the runner process stopped while this run was running"
            body = {"state": INTERRUPTED, "exit_code": None, "duration": run.duration}
            body["reason"] = run.reason
            self.journal.emit(run, EV_DONE, json.dumps(body))
            log.warning("%s interrupted", self._label(run), extra={"run_id": run.id})
        queued = await self.store.list_runs(states=[QUEUED], limit=1_000_000)
        for run in reversed(queued):  # oldest first
            if owner.alive(run.owner):
                continue  # queued in another live process: it will run it
            run.owner = self.owner
            why = self._resume_problem(run)
            if why is None:
                job = self.catalogue.get(run.job)
                assert job is not None
                try:
                    sub = self.prepare(job, run.params, timeout=run.timeout)
                except ParameterError as exc:
                    why = f"its parameters are no longer valid: {exc}"
            if why is not None:
                run.state, run.finished, run.reason = INTERRUPTED, now, why
                body = {"state": INTERRUPTED, "exit_code": None, "duration": None, "reason": why}
                self.journal.emit(run, EV_DONE, json.dumps(body))
                continue
            self.journal.open(run)
            self.journal.save(run)  # records the new owner
            self.queue[run.id] = Active(run, sub)
            log.info("%s queued again after restart", self._label(run), extra={"run_id": run.id})
        await self.journal.sync()
        self._pump()

    def _resume_problem(self, run: RunRecord) -> str | None:
        if self.catalogue.get(run.job) is None:
            return f"job /{run.job} no longer exists"
        if run.had_secrets:
            return "secret parameters are never stored, so it cannot resume; start it again"
        return None

    async def _prune_forever(self) -> None:
        while True:
            cutoff = time.time() - self.settings.retention_days * 86400
            try:
                removed = await self.store.prune(cutoff)
            except Exception:
                log.exception("pruning old runs failed")
            else:
                if removed:
                    log.info(
                        "pruned %d runs older than %g days", removed, self.settings.retention_days
                    )
            await asyncio.sleep(3600)

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
        if self._pruner is not None:
            self._pruner.cancel()
        for active in list(self.running.values()):
            await self.cancel(active.run.id, "the runner stopped")
        await self.journal.sync()
        owner.release(self.owner)
        if self.services is not None:
            await self.services.close()

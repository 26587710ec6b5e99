"""One run while it executes: its job's task, where its output goes, how it is stopped.

The executor schedules runs; this is what happens to one of them between its start and
its end: the job runs in a task of its own (so that one that will not stop cannot hold
its slot and lock for ever), its events go to the journal until it ends or passes its
output limit, and its secrets are masked out of everything it writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.journal import Journal
from runner.kinds import Host, Submission
from runner.records import EV_ERROR, RunRecord

log = logging.getLogger("runner.runs")


@dataclass
class Active:
    """A run this process is responsible for (queued or running)."""

    run: RunRecord
    sub: Submission
    # Replaces the run's secrets in every text of it that is recorded or shown.
    mask: Callable[[str], str]
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the run ended: nothing a job left behind is appended after its `done`.
    closed: bool = False
    dropped: int = 0
    written: int = 0  # bytes of output so far, against the run's output limit
    overflow: str | None = None  # why the run was stopped for its output
    abandoned: str = ""  # said of a job that would not stop when cancelled

    @property
    def lock(self) -> str | None:
        """The real lock key (the record shows it masked: it may be built from a secret)."""
        return self.sub.lock_key


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def label(run: RunRecord) -> str:
    """How a run is named in log lines: ``<id> vm/create(rg=demo, …)``."""
    return f"{run.id} {run.job}({_fmt_params(run.params)})"


async def run_job(
    active: Active,
    sink: Callable[[str, str], None],
    host: Host,
    abandoned: set[asyncio.Task[int]],
) -> int:
    """The job in a task of its own, so that one that will not stop (a Python job that
    swallows CancelledError) cannot hold its run, its slot and its lock for ever."""
    sub, run = active.sub, active.run
    job = asyncio.get_running_loop().create_task(sub.job.invoke(sub, run, sink, active.mask, host))
    try:
        done, _ = await asyncio.wait({job}, timeout=run.timeout)
    except asyncio.CancelledError:
        await _stop(active, job, host.kill_grace, abandoned)
        raise
    if not done:
        await _stop(active, job, host.kill_grace, abandoned)
        raise TimeoutError
    return job.result()


async def _stop(
    active: Active, job: asyncio.Task[int], kill_grace: float, abandoned: set[asyncio.Task[int]]
) -> None:
    """Cancel the job; past the grace period, give up on it and say so."""
    job.cancel()
    # A script gets SIGTERM, then SIGKILL after kill_grace: allow for both.
    grace = kill_grace + 2.0
    done, _ = await asyncio.shield(asyncio.wait({job}, timeout=grace))
    if not done:
        active.abandoned = (
            f"; the job did not stop within {grace:g} s of its cancellation and was "
            "abandoned (a Python job that catches CancelledError may still be running)"
        )
        abandoned.add(job)
        job.add_done_callback(abandoned.discard)
        log.error("%s%s", label(active.run), active.abandoned, extra={"run_id": active.run.id})


def sink_for(active: Active, journal: Journal, default_limit: int) -> Callable[[str, str], None]:
    """Where the job's events go: the journal, until the run ends or its output passes
    its limit."""
    run = active.run
    limit = active.sub.job.output_limit or default_limit

    def sink(kind: str, data: str) -> None:
        if active.closed or active.overflow:
            active.dropped += 1
            if active.dropped == 1 and active.closed:
                log.warning("%s: output after the run ended, not recorded", label(run),
                            extra={"run_id": run.id})  # fmt: skip
            return
        active.written += len(data)
        if active.written > limit:
            _overflow(active, journal, limit)
            return
        journal.emit(run, kind, data)

    return sink


def _overflow(active: Active, journal: Journal, limit: int) -> None:
    """Stop a run whose output passed its limit: it fails, saying so (nothing more of
    its output is stored, and nothing of it silently)."""
    active.overflow = (
        f"the run wrote more than its output limit of {limit} bytes and was stopped "
        "(raise it with OUTPUT_LIMIT / # runner-output-limit:, or max_output_bytes)"
    )
    journal.emit(active.run, EV_ERROR, "runner: " + active.overflow)
    if active.task is not None:
        active.task.cancel()

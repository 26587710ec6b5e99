"""The commands that work on this host's state dir: run, jobs, runs, logs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from typing import Any

from runner.auth import Principal
from runner.catalogue import Catalogue, folders
from runner.cli import show
from runner.cli.show import pairs
from runner.client import exits
from runner.errors import ConfigError, RunnerError
from runner.journal import Journal
from runner.records import EV_DONE, EV_ERROR, EV_OUTPUT, VIA_CLI, Event, Trigger
from runner.runtime import Runtime, build
from runner.service import History, StartRequest
from runner.settings import Settings
from runner.store import SQLiteStore
from runner.wire import escape_controls, result_line, text_line


class EventPrinter:
    """Output lines to stdout; errors, progress and the result line to stderr. Control
    characters are escaped for a terminal, kept for a pipe or a file.

    A failure a job explained (``JobError``) arrives twice: as its last ``error`` line and
    as the ``done`` event's reason. A terminal shows it once.
    """

    def __init__(self) -> None:
        self.last_error: str | None = None

    def __call__(self, event: Event) -> None:
        if event.kind in (EV_OUTPUT, EV_ERROR):
            stream = sys.stdout if event.kind == EV_OUTPUT else sys.stderr
            print(
                escape_controls(event.data) if stream.isatty() else event.data,
                file=stream,
                flush=True,
            )
            if event.kind == EV_ERROR:
                self.last_error = event.data
            return
        line = text_line(event)
        if event.kind == EV_DONE:
            done = event.json()
            if done.get("reason") and done["reason"] == self.last_error:
                line = result_line(event.run_id, done)
        if line is not None:
            print(line, file=sys.stderr, flush=True)


async def run_here(settings: Settings, job_path: str, items: list[str], limit: float | None) -> int:
    """Run a job in this process, recorded in the state dir like any other run.

    It does not recover the store: a server may be running on the same state dir.
    """
    runtime = build(settings)
    await runtime.start(recover=False)
    try:
        job = runtime.runs.find(job_path.strip("/"))
        if job is None:
            raise RunnerError(f"no job {job_path!r}; `runner jobs` lists them")
        if job.lock:
            _take_lock_keys(runtime, job.path)
        request = StartRequest(
            job.path,
            pairs(items),
            Principal.cli(getpass.getuser()),
            timeout=limit,
            trigger=Trigger(VIA_CLI),
        )
        run = (await runtime.runs.start(request)).run
        done: dict[str, Any] | None = None
        print_event = EventPrinter()
        try:
            async for batch in runtime.runs.follow(run.id):
                for event in batch:
                    print_event(event)
                    if event.kind == EV_DONE:
                        done = event.json()
        except asyncio.CancelledError:
            # Ctrl-C: cancel the run and record it, then stop.
            with contextlib.suppress(RunnerError):
                await runtime.runs.cancel(run.id, reason="interrupted from the terminal")
            raise
        return exits.of_done(done)
    finally:
        await runtime.stop()


def _take_lock_keys(runtime: Runtime, job: str) -> None:
    """A job with a lock key runs here only if no server hands out this state dir's lock
    keys: two processes would each let one key's runs overlap (issue 15, item 3)."""
    try:
        runtime.claim_state_dir(wait=0)
    except ConfigError as exc:
        raise RunnerError(
            f"{exc}. /{job} takes a lock key, and only one process per state dir may hand "
            f"them out: start it through that server (`runner call {job} … --server URL`)"
        ) from None


def list_jobs(settings: Settings, *, as_json: bool) -> int:
    catalogue = Catalogue.discover(folders(settings.server))
    show.jobs((j.describe() for j in catalogue), as_json=as_json)
    return 0


async def _history(settings: Settings) -> History:
    if not settings.db_path.is_file():
        raise RunnerError(f"no run store at {settings.db_path}; nothing has run here yet")
    store = SQLiteStore(settings.db_path)
    await store.open()
    # No live runs in this process: a run a server holds is followed through the store.
    return History(store, Journal(store))


async def list_runs(settings: Settings, args: argparse.Namespace) -> int:
    history = await _history(settings)
    try:
        page = await history.list_runs(
            Principal.cli(getpass.getuser()),
            job=args.job,
            states=[args.state] if args.state else [],
            limit=args.limit,
        )
    finally:
        await history.store.close()
    show.runs((r.to_json() for r in page.runs), as_json=args.json)
    return 0


async def show_log(settings: Settings, run_id: str, *, follow: bool) -> int:
    """Print a run's log; with ``follow``, until it ends, exiting with the run's code."""
    history = await _history(settings)
    try:
        await history.get(run_id)
        batches = history.follow(run_id) if follow else history.log(run_id)
        done: dict[str, Any] | None = None
        print_event = EventPrinter()
        async for batch in batches:
            for event in batch:
                print_event(event)
                if event.kind == EV_DONE:
                    done = event.json()
        return exits.of_done(done) if follow else 0
    finally:
        await history.store.close()

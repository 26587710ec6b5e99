"""The ``runner`` command: serve, run, jobs, runs, logs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner import logs
from runner.auth.cli import (
    add_passwd_arguments,
    add_token_arguments,
    passwd_command,
    token_command,
)
from runner.catalogue import Catalogue
from runner.errors import ParameterError, RunnerError
from runner.records import EV_DONE, EV_ERROR, EV_OUTPUT, EV_STATUS, FINAL, STATES, Event
from runner.server import build_executor
from runner.settings import Settings, load
from runner.store.sqlite import SQLiteStore
from runner.web.streams import result_line, text_line


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="runner.toml to read (default ./runner.toml)")
    p.add_argument("--state-dir", help="folder for the run store and TLS files")
    p.add_argument(
        "--jobs",
        action="append",
        metavar="DIR",
        help="a folder of jobs to serve besides the built-in ones (repeatable)",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="runner", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve jobs over HTTPS")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8443; 0 picks a free one)")
    serve.add_argument("--tls-cert", help="certificate (PEM); without it one is generated")
    serve.add_argument("--tls-key", help="private key (PEM) of --tls-cert")
    serve.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    serve.add_argument(
        "--sandbox", action="store_true", help="run on the emulated Azure, in this process"
    )
    serve.add_argument("--htpasswd", help="htpasswd file (bcrypt) of users who may call")
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow listening beyond loopback with no authentication",
    )

    add_passwd_arguments(sub.add_parser("passwd", help="add or update a user (bcrypt)"))
    token = sub.add_parser("token", help="create, list or revoke API tokens")
    _common(token)
    add_token_arguments(token)

    run = sub.add_parser("run", help="run a job in this terminal")
    _common(run)
    run.add_argument("job", help="job path, e.g. vm/create")
    run.add_argument("params", nargs="*", metavar="KEY=VALUE")
    run.add_argument("--timeout", type=float, help="seconds (at most the job's own limit)")
    run.add_argument("--sandbox", action="store_true", help="run on the emulated Azure")

    sandbox = sub.add_parser("sandbox", help="run the emulated Azure alone and print its env")
    sandbox.add_argument("--state-dir", default=".runner", help="its files go in STATE/sandbox")

    jobs = sub.add_parser("jobs", help="list the jobs")
    _common(jobs)
    jobs.add_argument("--json", action="store_true", help="print the catalogue as JSON")

    runs = sub.add_parser("runs", help="list recorded runs, newest first")
    _common(runs)
    runs.add_argument("--job")
    runs.add_argument("--state", choices=STATES)
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")

    logs_ = sub.add_parser("logs", help="print a run's output")
    _common(logs_)
    logs_.add_argument("id", help="run id")
    logs_.add_argument("--follow", "-f", action="store_true", help="follow until the run ends")
    return top


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "state_dir": args.state_dir,
        "jobs": tuple(args.jobs) if args.jobs else None,
    }
    for name in ("host", "port", "tls_cert", "tls_key", "htpasswd"):
        overrides[name] = getattr(args, name, None)
    if getattr(args, "insecure_no_auth", False):
        overrides["insecure_no_auth"] = True
    if getattr(args, "no_tls", False):
        overrides["tls"] = False
    if getattr(args, "sandbox", False):
        overrides["sandbox"] = True
    return load(config=args.config, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "sandbox":
        from runner.sandbox.__main__ import main as sandbox_main

        return sandbox_main([str(Path(args.state_dir) / "sandbox")])
    if args.command == "passwd":
        return passwd_command(args)
    try:
        settings = settings_from(args)
        logs.configure(settings.log_format, settings.log_level)
        if args.command == "serve":
            from runner.server import serve

            serve(settings)
            return 0
        if args.command == "token":
            return token_command(args, default_store=settings.tokens_path)
        if args.command == "run":
            return asyncio.run(run_here(settings, args.job, args.params, args.timeout))
        if args.command == "jobs":
            return list_jobs(settings, as_json=args.json)
        if args.command == "runs":
            return asyncio.run(list_runs(settings, args))
        if args.command == "logs":
            return asyncio.run(show_log(settings, args.id, follow=args.follow))
    except ParameterError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2
    except RunnerError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2  # pragma: no cover - argparse requires a command


def _pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise RunnerError(f"parameters are KEY=VALUE; got {item!r}")
        out[key] = value
    return out


def _print_event(event: Event, run_id: str) -> None:
    if event.kind == EV_OUTPUT:
        print(event.data, flush=True)
    elif event.kind in (EV_ERROR, EV_STATUS, EV_DONE):
        line = text_line(event)
        if line is not None:
            print(line, file=sys.stderr, flush=True)


async def run_here(settings: Settings, job_path: str, items: list[str], limit: float | None) -> int:
    """Run a job in this process, recorded in the state dir like any other run.

    It does not recover the store: a server may be running on the same state dir.
    """
    stack = contextlib.ExitStack()
    settings, executor = build_executor(settings, stack)
    job = executor.catalogue.get(job_path.strip("/"))
    if job is None:
        stack.close()
        raise RunnerError(f"no job {job_path!r}; `runner jobs` lists them")
    store = executor.store
    await store.open()
    try:
        sub = executor.prepare(job, _pairs(items), timeout=limit)
        run = await executor.submit(sub, caller=f"cli:{getpass.getuser()}")
        done: dict[str, Any] = {}
        try:
            async for batch in executor.journal.follow(run.id):
                for event in batch:
                    _print_event(event, run.id)
                    if event.kind == EV_DONE:
                        done = json.loads(event.data)
        except asyncio.CancelledError:
            # Ctrl-C: cancel the run and record it, then stop.
            with contextlib.suppress(RunnerError):
                await executor.cancel(run.id, "interrupted from the terminal")
            raise
        code = done.get("exit_code")
        return 1 if code is None else int(code)
    finally:
        await executor.close()
        await store.close()
        stack.close()


def list_jobs(settings: Settings, *, as_json: bool) -> int:
    catalogue = Catalogue.discover(settings.job_dirs)
    if as_json:
        print(json.dumps([j.describe() for j in catalogue], indent=2))
        return 0
    for job in catalogue:
        first = job.description.splitlines()[0] if job.description else ""
        print(f"/{job.path:30} {job.kind:7} {first}")
    return 0


async def _open_store(settings: Settings) -> SQLiteStore:
    if not settings.db_path.is_file():
        raise RunnerError(f"no run store at {settings.db_path}; nothing has run here yet")
    store = SQLiteStore(settings.db_path)
    await store.open()
    return store


async def list_runs(settings: Settings, args: argparse.Namespace) -> int:
    store = await _open_store(settings)
    try:
        runs = await store.list_runs(
            job=args.job, states=[args.state] if args.state else [], limit=args.limit
        )
    finally:
        await store.close()
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
        return 0
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created))
        dur = f"{r.duration:.2f}s" if r.duration is not None else "-"
        code = "-" if r.exit_code is None else r.exit_code
        print(f"{r.id}  {when}  {r.state:11} exit={code!s:4} {dur:>9}  /{r.job}")
    return 0


async def show_log(settings: Settings, run_id: str, *, follow: bool) -> int:
    """Print a run's log from the store; with ``follow``, poll until it ends."""
    store = await _open_store(settings)
    try:
        run = await store.get(run_id)
        if run is None:
            raise RunnerError(f"no run {run_id}")
        last = 0
        while True:
            batch = await store.events(run_id, last)
            for event in batch:
                _print_event(event, run_id)
                last = event.seq
                if event.kind == EV_DONE:
                    return 0
            if not batch:
                if not follow:
                    return 0
                run = await store.get(run_id)
                if run is not None and run.state in FINAL and run.last_event <= last:
                    return 0
                await asyncio.sleep(0.2)
    finally:
        await store.close()


__all__ = ["main", "result_line"]

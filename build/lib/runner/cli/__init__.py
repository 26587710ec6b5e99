"""The ``runner`` command: serve, run, jobs, runs, logs, sandbox, passwd, token."""

from __future__ import annotations

import argparse
import asyncio
import sys
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
from runner.cli.local import list_jobs, list_runs, run_here, show_log
from runner.errors import RunnerError
from runner.records import STATES
from runner.settings import Settings, load


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
        logs.configure(settings.server.log_format, settings.server.log_level)
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
    except RunnerError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2  # pragma: no cover - argparse requires a command


__all__ = ["main", "parser"]

"""The runner command: serve jobs over HTTPS, run one here, or call a runner server."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner import __version__
from runner.cli.arguments import add_passwd_arguments, add_token_arguments
from runner.client import exits
from runner.errors import ConfigError, RunnerError, ServerRefused, Unreachable
from runner.records import STATES

EPILOG = """\
remote: call, jobs, runs, logs and cancel work against a server with --server URL (or
RUNNER_URL), a token from RUNNER_TOKEN (or --token), or RUNNER_USER and RUNNER_PASSWORD,
and --cacert FILE (RUNNER_CACERT) for a private CA. Without a server, jobs, runs and logs
read this host's state dir.
exit codes of call and logs --follow: the run's own; 124 timed out; 130 cancelled or
detached; 75 interrupted; 69 server unreachable; 64 refused by the server; 2 usage."""


def _options() -> tuple[argparse.ArgumentParser, ...]:
    """Options commands take, before or after their name: the local state (with or
    without job folders), a server.

    Defaults are SUPPRESS so that a subcommand's parser never overwrites a value given
    before its name (argparse's parents otherwise reset it).
    """
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                       help="runner.toml to read (default ./runner.toml)")  # fmt: skip
    state.add_argument("--state-dir", default=argparse.SUPPRESS,
                       help="folder of the run store and TLS files")  # fmt: skip
    local = argparse.ArgumentParser(add_help=False, parents=[state])
    local.add_argument("--jobs", action="append", metavar="DIR", default=argparse.SUPPRESS,
                       help="a folder of jobs besides the built-in ones (repeatable)")  # fmt: skip
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--server", metavar="URL", default=argparse.SUPPRESS,
                        help="a runner server (RUNNER_URL)")  # fmt: skip
    remote.add_argument("--token", default=argparse.SUPPRESS,
                        help="API token (RUNNER_TOKEN is better: argv shows in ps)")  # fmt: skip
    remote.add_argument("--cacert", metavar="FILE", default=argparse.SUPPRESS,
                        help="CA certificate to trust (RUNNER_CACERT)")  # fmt: skip
    remote.add_argument("--tries", type=int, default=argparse.SUPPRESS,
                        help="tries through drops before giving up (default 30)")  # fmt: skip
    return state, local, remote


def parser() -> argparse.ArgumentParser:
    state, local, remote = _options()
    top = argparse.ArgumentParser(
        prog="runner",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"runner {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve jobs over HTTPS", parents=[local])
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8443; 0 picks a free one)")
    serve.add_argument("--tls-cert", help="certificate (PEM); without it one is generated")
    serve.add_argument("--tls-key", help="private key (PEM) of --tls-cert")
    serve.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    serve.add_argument("--sandbox", action="store_true", help="run on the emulated Azure")
    serve.add_argument("--htpasswd", help="htpasswd file (bcrypt) of users who may call")
    serve.add_argument("--insecure-no-auth", action="store_true",
                       help="allow listening beyond loopback with no authentication")  # fmt: skip

    run = sub.add_parser("run", help="run a job in this terminal", parents=[local])
    run.add_argument("job", help="job path, e.g. vm/create")
    run.add_argument("params", nargs="*", metavar="KEY=VALUE")
    run.add_argument("--timeout", type=float, help="seconds (at most the job's own limit)")
    run.add_argument("--sandbox", action="store_true", help="run on the emulated Azure")

    call = sub.add_parser("call", help="start a run on a server and follow it to its end",
                          parents=[remote])  # fmt: skip
    call.add_argument("job", help="job path, e.g. vm/create")
    call.add_argument("params", nargs="*", metavar="KEY=VALUE")
    call.add_argument("--body", metavar="FILE", help="request body from FILE (- for stdin)")
    call.add_argument("--content-type", help="of --body (default: JSON if it parses, else text)")
    call.add_argument("--async", dest="detach", action="store_true",
                      help="start it, print its id and return")  # fmt: skip
    call.add_argument("--timeout", type=float, help="the run's timeout in seconds")
    call.add_argument("--idempotency-key", metavar="KEY",
                      help="calls with one key start one run (default: one per call)")  # fmt: skip
    call.add_argument("--json", action="store_true", help="with --async: the run as JSON")

    jobs = sub.add_parser("jobs", help="list the jobs", parents=[local, remote])
    jobs.add_argument("--json", action="store_true", help="print the catalogue as JSON")

    runs = sub.add_parser("runs", help="list runs, newest first", parents=[local, remote])
    runs.add_argument("--job")
    runs.add_argument("--state", choices=STATES)
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")

    logs_ = sub.add_parser("logs", help="print a run's output", parents=[local, remote])
    logs_.add_argument("id", help="run id")
    logs_.add_argument("--follow", "-f", action="store_true",
                       help="follow until the run ends; exit with its code")  # fmt: skip

    cancel = sub.add_parser("cancel", help="cancel a run on a server", parents=[remote])
    cancel.add_argument("id", help="run id")
    cancel.add_argument("--json", action="store_true")

    sandbox = sub.add_parser("sandbox", help="run the emulated Azure alone and print its env")
    sandbox.add_argument("--state-dir", default=".runner", help="its files go in STATE/sandbox")
    sandbox.add_argument("--env-file", metavar="FILE",
                         help="also write azure-cli's environment there, to `source`")  # fmt: skip
    sandbox.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE",
                         help="store a secret in the sandbox's Key Vault (repeatable)")  # fmt: skip

    add_passwd_arguments(sub.add_parser("passwd", help="add or update a user (bcrypt)"))
    token = sub.add_parser("token", help="create, list or revoke API tokens", parents=[state])
    add_token_arguments(token, parents=[state])
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ServerRefused as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return exits.REFUSED
    except Unreachable as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return exits.UNREACHABLE
    except RunnerError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return exits.USAGE
    except KeyboardInterrupt:
        return exits.CANCELLED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        from runner.sandbox.__main__ import main as sandbox_main

        extra = ["--env-file", args.env_file] if args.env_file else []
        for item in args.secret:
            extra += ["--secret", item]
        return sandbox_main([str(Path(args.state_dir) / "sandbox"), *extra])
    if args.command == "passwd":
        from runner.auth.cli import passwd_command

        return passwd_command(args)
    if args.command in ("call", "jobs", "runs", "logs", "cancel"):
        from runner.client.connection import Remote

        remote = Remote.from_options(
            getattr(args, "server", None),
            getattr(args, "token", None),
            getattr(args, "cacert", None),
        )
        if remote is not None:
            from runner.cli import remote as commands

            return commands.run(args, remote)
        if args.command in ("call", "cancel"):
            raise ConfigError(f"runner {args.command} needs --server URL (or RUNNER_URL)")
    return _local(args)


def _local(args: argparse.Namespace) -> int:
    import asyncio

    from runner import logs
    from runner.cli import local
    from runner.settings import load

    settings = load(config=getattr(args, "config", None), overrides=_overrides(args))
    logs.configure(
        settings.server.log_format,
        settings.server.log_level,
        job_terminal=args.command == "run" and sys.stderr.isatty(),
    )
    if args.command == "serve":
        from runner.server import serve

        serve(settings)
        return 0
    if args.command == "token":
        from runner.auth.cli import token_command

        return token_command(args, default_store=settings.tokens_path)
    if args.command == "run":
        return asyncio.run(local.run_here(settings, args.job, args.params, args.timeout))
    if args.command == "jobs":
        return local.list_jobs(settings, as_json=args.json)
    if args.command == "runs":
        return asyncio.run(local.list_runs(settings, args))
    if args.command == "logs":
        return asyncio.run(local.show_log(settings, args.id, follow=args.follow))
    raise AssertionError(args.command)  # pragma: no cover - argparse knows the commands


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    jobs = getattr(args, "jobs", None)
    overrides: dict[str, Any] = {
        "state_dir": getattr(args, "state_dir", None),
        "jobs": tuple(jobs) if jobs else None,
    }
    for name in ("host", "port", "tls_cert", "tls_key", "htpasswd"):
        overrides[name] = getattr(args, name, None)
    if getattr(args, "insecure_no_auth", False):
        overrides["insecure_no_auth"] = True
    if getattr(args, "no_tls", False):
        overrides["tls"] = False
    if getattr(args, "sandbox", False):
        overrides["sandbox"] = True
    return overrides


__all__ = ["main", "parser"]

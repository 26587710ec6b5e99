"""The commands against a runner server: call, jobs, runs, logs, cancel (with --server)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from runner.cli import show
from runner.cli.show import pairs
from runner.client import exits
from runner.client.connection import Backoff, Connection, Remote
from runner.client.follow import Followed, Printer, Start, follow, start_and_follow
from runner.errors import ConfigError, RunnerError
from runner.wire import is_keepalive


class Detach(KeyboardInterrupt):
    """SIGTERM (a CI cancelling its step): leave the run going, like a non-interactive
    Ctrl-C."""


def run(args: argparse.Namespace, remote: Remote) -> int:
    tries = getattr(args, "tries", None)
    conn = Connection(remote, Backoff(tries=tries) if tries else None)
    try:
        if args.command == "call":
            return call(conn, args)
        if args.command == "jobs":
            show.jobs(conn.json("GET", "/_jobs")["jobs"], as_json=args.json)
            return 0
        if args.command == "runs":
            params: dict[str, Any] = {"limit": args.limit}
            if args.job:
                params["job"] = args.job.strip("/")
            if args.state:
                params["state"] = args.state
            show.runs(conn.json("GET", "/_runs", params=params)["runs"], as_json=args.json)
            return 0
        if args.command == "logs":
            return logs(conn, args.id, follow_it=args.follow)
        run_ = conn.json("POST", f"/_runs/{args.id}/cancel")
        if args.json:
            print(json.dumps(run_, indent=2))
        else:
            print(f"run {run_['id']} {run_['state']}", file=sys.stderr)
        return 0
    finally:
        conn.close()


def _body(args: argparse.Namespace) -> tuple[bytes, str | None]:
    if args.body is None:
        return b"", None
    try:
        data = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    except OSError as exc:
        raise ConfigError(f"--body {args.body}: {exc.strerror}") from None
    if args.content_type:
        return data, args.content_type
    try:
        json.loads(data)
    except ValueError:
        return data, "text/plain; charset=utf-8"
    return data, "application/json"


def call(conn: Connection, args: argparse.Namespace) -> int:
    """``runner call JOB k=v…``: start, follow through drops, exit with the run's code."""
    body, ctype = _body(args)
    start = Start(
        job=args.job.strip("/"),
        params=pairs(args.params),
        key=args.idempotency_key or str(uuid.uuid4()),
        body=body,
        content_type=ctype,
        timeout=args.timeout,
    )
    if args.detach:
        return _start_only(conn, start, as_json=args.json)
    show_event = Printer(server=conn.remote.url)
    followed = Followed()
    previous = signal.signal(signal.SIGTERM, _detach)
    try:
        done = start_and_follow(conn, start, show_event, followed)
    except KeyboardInterrupt as stop:
        return _interrupted(conn, followed, show_event, asked=not isinstance(stop, Detach))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return exits.of_done(done)


def _start_only(conn: Connection, start: Start, *, as_json: bool) -> int:
    params = dict(start.params)
    if start.timeout is not None:
        params["_timeout"] = f"{start.timeout:g}"
    headers = {"Idempotency-Key": start.key, "Prefer": "respond-async"}
    if start.content_type:
        headers["Content-Type"] = start.content_type
    run_ = conn.json("POST", "/" + start.job, params=params, content=start.body, headers=headers)
    if as_json:
        print(json.dumps(run_, indent=2))
    else:
        print(run_["id"])
        print(f"runner: started {conn.url('/_runs/' + run_['id'])}", file=sys.stderr)
    return 0


def _detach(signum: int, frame: FrameType | None) -> None:
    raise Detach


def _interrupted(conn: Connection, followed: Followed, show: Printer, *, asked: bool) -> int:
    """Ctrl-C: ask once whether to cancel the run or leave it; without a terminal (or on
    SIGTERM), leave it and say where it is."""
    if not followed.run_id:
        print("runner: stopped before the server named a run; `runner runs` shows whether "
              "one was started", file=sys.stderr)  # fmt: skip
        return exits.DETACHED
    where = conn.url(f"/_runs/{followed.run_id}")
    if asked and sys.stdin.isatty() and sys.stderr.isatty():
        try:
            answer = input(f"\nrunner: cancel run {followed.run_id}? [y/N] ")
        except (KeyboardInterrupt, EOFError):
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            conn.json("POST", f"/_runs/{followed.run_id}/cancel")
            follow(conn, show, followed)
            return exits.of_done(followed.done)
    print(f"runner: detached; run {followed.run_id} goes on: {where}", file=sys.stderr)
    return exits.DETACHED


def logs(conn: Connection, run_id: str, *, follow_it: bool) -> int:
    """``runner logs ID``: the output so far; with ``--follow``, to the end, exiting with
    the run's code."""
    if not follow_it:
        text = conn.http.get(f"/_runs/{run_id}/log")
        if text.status_code == 404:
            raise RunnerError(f"no run {run_id}")
        for line in text.text.splitlines():
            if not is_keepalive(line):
                print(line)
        return 0
    followed = Followed(run_id=run_id)
    follow(conn, Printer(server=conn.remote.url), followed)
    return exits.of_done(followed.done)

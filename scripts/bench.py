"""Benchmark the runner end to end: a real server in a subprocess, real HTTP on 127.0.0.1.

``make bench`` (or ``.venv/bin/python scripts/bench.py``) starts
``python -m runner serve --port 0 --no-tls --jobs scripts/bench_jobs`` in a fresh state
directory (``RUNNER_BUILTIN_JOBS=false``, ``RUNNER_MAX_RUNNING=64``,
``RUNNER_MAX_QUEUED=10000``), waits for ``GET /_ready``, and measures:

``rps``
    Runs per second in text mode (``POST /<job>``, no special header, the whole streamed
    answer read) at each ``--concurrency`` for ``/py/noop`` (a Python job printing one
    line) and ``/sh/noop`` (``#!/bin/sh`` + ``echo ok``). Keep-alive connections; after
    each load the run history is checked for runs that did not succeed.
``latency``
    Request-to-first-byte (headers) and request-to-last-byte times, p50 and p99, one
    request at a time (concurrency 1), for both jobs.
``replay``
    A run of ``/py/lines`` printing ``--lines`` lines is started async (``Prefer:
    respond-async``) and awaited (``GET /_runs/<id>``); then ``GET /_runs/<id>/events``
    (SSE) and ``GET /_runs/<id>/log`` (text) are each read to the end, ``--replay-repeat``
    times; the median rate is reported in lines/s.
``sse-memory``
    RSS of the server (``VmRSS`` of ``/proc/<pid>/status``) before and after opening
    ``--streams`` idle SSE streams to ``GET /_runs/<id>/events`` of a run that sleeps,
    divided by the number of streams. The soft ``RLIMIT_NOFILE`` is raised to the hard
    limit first; the server inherits it.

``--versus`` (instead of the parts)
    Side by side, rounds alternated in one run: the script job, the Python job, the asyncio
    spawn ceiling (an event loop spawning the same script alone, no HTTP) and every server
    given with ``--vs [NAME=]URL`` (webhookd, say: see ``benchkit/versus.py``); medians,
    first-byte p50 at c=1, and the ratios of the runner's jobs to each of them.

The machine's cores are shared by client and server, so the load generator must stay
lean: throughput is driven by ``wrk`` when it is installed (``apt-get install -y wrk``;
one thread, a Lua script for the POST) and otherwise by a raw-socket asyncio HTTP/1.1
keep-alive client run in a separate process (``bench.py --worker``). Latency uses a
blocking raw-socket client, one request at a time, also in a separate process. Each
figure says which client produced it.

``--profile DIR`` additionally records the server with py-spy (``.venv/bin/pip install
py-spy``; not a project dependency) under each throughput load, after the measurement so
the sampler does not skew the figure, writes the raw stacks to DIR and prints the top
functions by own and by inclusive time.

Every loop is bounded in count and time; the server is stopped on exit, on Ctrl-C and
on errors. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchkit.constants import (
    PARTS,
    VENV_PYTHON,
)
from benchkit.figures import Figure, print_table
from benchkit.load import WRK_LUA, worker_main
from benchkit.parts import Bench
from benchkit.server import Server
from benchkit.versus import Contestant, parse_vs, run_versus

# -- main --------------------------------------------------------------------------------


def csv_of(kind: Callable[[str], Any], choices: tuple[str, ...] = ()) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        items = [kind(t.strip()) for t in text.split(",") if t.strip()]
        bad = [i for i in items if choices and i not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return items

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark a real runner server on 127.0.0.1 (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--parts", type=csv_of(str, PARTS), default=list(PARTS), help="what to run")
    p.add_argument("--jobs", type=csv_of(str, ("python", "script")), default=["python", "script"])
    p.add_argument("--concurrency", type=csv_of(int), default=[1, 8], help="for rps")
    p.add_argument("--seconds", type=float, default=5.0, help="per rps/latency measurement")
    p.add_argument("--warmup", type=float, default=1.0, help="load before each measurement")
    p.add_argument("--latency-requests", type=int, default=3000, help="at most, per job")
    p.add_argument("--lines", type=int, default=100_000, help="size of the replayed run")
    p.add_argument("--replay-repeat", type=int, default=3)
    p.add_argument("--streams", type=int, default=1000, help="idle SSE streams to open")
    p.add_argument("--sleep", type=float, default=120.0, help="the idle run's length (s)")
    p.add_argument(
        "--client", choices=("auto", "wrk", "python"), default="auto", help="throughput client"
    )
    p.add_argument("--log-level", default="info", help="the server's RUNNER_LOG_LEVEL")
    p.add_argument(
        "--env", action="append", default=[], metavar="RUNNER_X=V", help="extra server setting"
    )
    p.add_argument("--profile", metavar="DIR", help="py-spy the server under each load")
    p.add_argument("--top", type=int, default=15, help="functions shown per profile")
    p.add_argument(
        "--versus",
        action="store_true",
        help="side by side instead of the parts: the script job against the asyncio spawn "
        "ceiling and every --vs server, rounds alternated (see benchkit/versus.py)",
    )
    p.add_argument(
        "--vs",
        action="append",
        default=[],
        metavar="[NAME=]URL",
        help="with --versus: another server on this machine running the same script on POST",
    )
    p.add_argument("--rounds", type=int, default=3, help="with --versus: alternated rounds")
    p.add_argument("--json", action="store_true", help="print the figures as JSON only")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the state dir and server logs")
    args = p.parse_args(argv)
    for item in args.env:
        if not re.fullmatch(r"RUNNER_[A-Z_]+=.*", item):
            p.error(f"--env {item!r}: expected RUNNER_NAME=value")
    if args.seconds <= 0 or args.seconds > 600 or args.streams < 1 or args.lines < 1:
        p.error("--seconds must be in (0, 600]; --streams and --lines at least 1")
    if not 1 <= args.rounds <= 20:
        p.error("--rounds must be in [1, 20]")
    try:
        args.others = [parse_vs(v) for v in args.vs]
    except ValueError as exc:
        p.error(f"--vs {exc}")
    if args.vs and not args.versus:
        p.error("--vs goes with --versus")
    return args


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="runner-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
    wrk = shutil.which("wrk") if args.client != "python" else None
    if args.client == "wrk" and wrk is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    if wrk is None and args.client == "auto" and "rps" in args.parts:
        print(
            "note: wrk not found (apt-get install -y wrk); using the Python client for "
            "throughput, which competes with the server for CPU",
            file=sys.stderr,
        )
    nofile = raise_fd_limit(args.streams * 2 + 512)
    if "sse-memory" in args.parts and nofile < args.streams + 256:
        print(f"RLIMIT_NOFILE is {nofile}: too low for {args.streams} streams", file=sys.stderr)
        return 2
    extra = dict(item.split("=", 1) for item in args.env)
    figures: list[Figure] = []
    load_before = os.getloadavg()[0]
    with workdir(args.keep) as tmp:
        lua = tmp / "post.lua"
        lua.write_text(WRK_LUA)
        server = Server(python, tmp, args.log_level, extra)
        try:
            server.start()
            if not args.json:
                print(
                    f"server {server.url} pid {server.pid}; {os.cpu_count()} CPUs "
                    f"(load average {os.getloadavg()[0]:.2f}); "
                    f"RLIMIT_NOFILE {nofile}; throughput client: "
                    f"{'wrk' if wrk else 'python asyncio (separate process)'}",
                    flush=True,
                )
            bench = Bench(server, args, python, wrk, lua, figures)
            if args.versus:
                others: list[Contestant] = args.others
                run_versus(bench, others, args.rounds)
                args.parts = []
            steps = {
                "rps": bench.part_rps,
                "latency": bench.part_latency,
                "replay": bench.part_replay,
                "sse-memory": bench.part_sse_memory,
            }
            for part in PARTS:
                if part in args.parts:
                    steps[part]()
                    server.check_alive()
        finally:
            server.stop()
    load = {"before": load_before, "after": os.getloadavg()[0]}
    if args.json:
        json.dump(
            {"figures": [f.to_json() for f in figures], "load_average": load},
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print()
        print_table(figures)
        print("\ncommand:", " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]))
        print(f"1-minute load average: {load['before']:.2f} before, {load['after']:.2f} after")
        if load["before"] > 0.5:
            print("warning: the machine was busy before the run; the figures may be low")
    missed = [f.what for f in figures if f.ok is False]
    if missed and not args.json:
        print(f"{len(missed)} figure(s) missed their target: {'; '.join(missed)}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main())

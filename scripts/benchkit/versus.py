"""Side by side (issue 13): the runner's script job against the asyncio spawn ceiling and
against any server given with ``--vs``, in alternated rounds of one run, with ratios.

Machines are shared and noisy: figures taken minutes apart do not compare, figures of
rounds alternated within one run do. Each round measures every contestant at every
concurrency (the order rotates from round to round), then first-byte latency at c=1; the
table gives the median of the rounds and the ratios of the runner's jobs to each ``--vs``
server, then the CPU a run cost each process (:mod:`benchkit.cpu`: the runner's server,
its shepherds, the scripts, the load generator, the whole machine) and the most a script
job could do here if running the script cost the runner nothing beyond the Python job's
path: what is left to win, and where. The first ``--vs`` is the reference the targets
apply to (issue 13: webhookd with 8 workers; the script job ≥ 1.0× at c=1 and c=8, the
Python job ≥ 2.0× at c=8).

A ``--vs`` server is any HTTP server on this machine that runs the same one-line script on
``POST`` (loopback only: ratios of processes sharing these cores are the point). webhookd::

    mkdir -p /tmp/hooks && cp scripts/bench_jobs/sh/noop.sh /tmp/hooks/noop.sh
    webhookd -listen-addr 127.0.0.1:8080 -nb-workers 8 -scripts /tmp/hooks &
    scripts/bench.py --versus --vs webhookd-8=http://127.0.0.1:8080/noop
"""

from __future__ import annotations

import os
import statistics
import urllib.parse
from dataclasses import dataclass, field

from benchkit.constants import JOBS
from benchkit.cpu import PARTS, Sample
from benchkit.figures import Figure, fmt_value
from benchkit.http import fetch, request_bytes
from benchkit.load import run_worker, run_wrk
from benchkit.parts import Bench

LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
TARGET_SCRIPT_RATIO = 1.0
TARGET_PYTHON_RATIO_C8 = 2.0
TARGET_SCRIPT_TTFB_MS = 1.5


@dataclass
class Contestant:
    """One side: a URL to POST to, or (``url`` None) the asyncio spawn ceiling."""

    name: str
    url: str | None
    expect: str = ""  # what the end of a good answer holds (the runner's result line)
    rps: dict[int, list[float]] = field(default_factory=dict)
    ttfb: list[float] = field(default_factory=list)
    # µs of CPU per run by part (benchkit.cpu), one dict per round, per concurrency.
    cpu: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    ours: bool = False  # served by the runner under test: its processes are split

    @property
    def port(self) -> int:
        assert self.url is not None
        return urllib.parse.urlsplit(self.url).port or 80

    @property
    def path(self) -> str:
        assert self.url is not None
        return urllib.parse.urlsplit(self.url).path or "/"


def parse_vs(text: str) -> Contestant:
    """``NAME=URL`` or ``URL`` (named after its port); loopback http:// only."""
    name, sep, url = text.partition("=")
    if not sep or "://" in name:
        name, url = "", text
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise ValueError(f"{text!r}: an http:// URL on this machine (127.0.0.1) is needed")
    return Contestant(name or f"vs:{parts.port or 80}", url)


def contestants(bench: Bench, others: list[Contestant]) -> list[Contestant]:
    url = bench.server.url
    ours = [
        Contestant("runner script job", f"{url}/sh/noop", "state=succeeded", ours=True),
        Contestant("runner Python job", f"{url}/py/noop", "state=succeeded", ours=True),
        Contestant("asyncio spawn ceiling", None),
    ]
    return [*others, *ours]


def measure_rps(bench: Bench, who: Contestant, c: int) -> float:
    """Runs/s of ``who`` at concurrency ``c``, and (into ``who.cpu``) its CPU per run."""
    args = bench.args
    if who.url is not None and bench.wrk is not None and args.warmup > 0:
        run_wrk(bench.wrk, who.url, bench.lua, c, args.warmup, latency=False)
    before = Sample.take(bench.server.pid if who.ours else None)
    if who.url is None:
        spec = {
            "kind": "ceiling",
            "script": str(JOBS / "sh" / "noop.sh"),
            "concurrency": c,
            "seconds": args.seconds,
            "warmup": args.warmup,
        }
        result = run_worker(spec, bench.python)
    elif bench.wrk is not None:
        result = run_wrk(bench.wrk, who.url, bench.lua, c, args.seconds, latency=False)
    else:
        spec = {
            "kind": "load",
            "port": who.port,
            "request": request_bytes("POST", who.path, who.port).decode("latin-1"),
            "concurrency": c,
            "seconds": args.seconds,
            "warmup": args.warmup,
        }
        result = run_worker(spec, bench.python)
    after = Sample.take(bench.server.pid if who.ours else None)
    runs = result["requests"]
    if who.url is None or bench.wrk is None:
        # A worker warms up inside the sampled window and counts only the runs after it:
        # the runs of its warm-up, at the same rate, are counted here too.
        runs = round(result["rps"] * (args.seconds + args.warmup))
    who.cpu.setdefault(c, []).append(after.per_run(before, runs))
    if result["errors"] or result.get("socket_errors"):
        print(f"  {who.name} c={c}: ERRORS {result['errors']} {result.get('socket_errors', '')}")
    rps: float = result["rps"]
    return rps


def measure_ttfb(bench: Bench, who: Contestant) -> float:
    spec = {
        "kind": "latency",
        "port": who.port,
        "request": request_bytes("POST", who.path, who.port).decode("latin-1"),
        "count": bench.args.latency_requests,
        "seconds": min(bench.args.seconds, 3.0),
        "warmup": min(1.0, bench.args.warmup),
        "expect": who.expect,
    }
    result = run_worker(spec, bench.python)
    ttfb: float = result["ttfb_p50"]
    return ttfb


def check(who: Contestant) -> None:
    if who.url is None:
        return
    resp = fetch(who.port, "POST", who.path)
    if resp.status != 200 or who.expect.encode() not in resp.body:
        raise RuntimeError(f"POST {who.url}: {resp.status} {bytes(resp.body[-300:])!r}")


def run_versus(bench: Bench, others: list[Contestant], rounds: int) -> None:
    """Every contestant, every concurrency, ``rounds`` times alternated; then the table."""
    sides = contestants(bench, others)
    for who in sides:
        check(who)
    for n in range(rounds):
        order = sides[n % len(sides) :] + sides[: n % len(sides)]
        for c in bench.args.concurrency:
            for who in order:
                value = measure_rps(bench, who, c)
                who.rps.setdefault(c, []).append(value)
                if not bench.args.json:
                    print(f"  round {n + 1}/{rounds} {who.name} c={c}: {value:,.0f} runs/s")
        for who in order:
            if who.url is not None:
                who.ttfb.append(measure_ttfb(bench, who))
        bench.server.check_alive()
    add_figures(bench, sides, others, rounds)


def add_figures(
    bench: Bench, sides: list[Contestant], others: list[Contestant], rounds: int
) -> None:
    client = f"wrk -t1, {rounds} rounds" if bench.wrk else f"python asyncio, {rounds} rounds"
    median = {who.name: {c: statistics.median(v) for c, v in who.rps.items()} for who in sides}
    for who in sides:
        for c, values in who.rps.items():
            spread = ", ".join(f"{v:,.0f}" for v in values)
            measured = client if who.url else f"asyncio worker, {rounds} rounds"
            figure = Figure("versus", f"{who.name} c={c}", median[who.name][c], "runs/s", measured)
            figure.note = f"rounds: {spread}"
            bench.figures.append(figure)
        if who.ttfb:
            target = TARGET_SCRIPT_TTFB_MS if who.name == "runner script job" else None
            value = statistics.median(who.ttfb)
            what = f"{who.name} first byte p50"
            figure = Figure("versus", what, value, "ms", "python socket c=1", target)
            figure.higher_is_better = False
            bench.figures.append(figure)
    refs = [*others, Contestant("asyncio spawn ceiling", None)]
    for ref in refs:
        for ours in ("runner script job", "runner Python job"):
            for c in bench.args.concurrency:
                target = ratio_target(ours, c) if ref is refs[0] and others else None
                ratio = median[ours][c] / median[ref.name][c]
                what = f"{ours} / {ref.name} c={c}"
                bench.figures.append(Figure("versus", what, ratio, "×", client, target))
    cpu = add_cpu_figures(bench, sides, client)
    add_bounds(bench, median, cpu, others)
    if not bench.args.json:
        print_side_by_side(sides, median, bench.args.concurrency)
        print_cpu(sides, cpu, bench.args.concurrency)


def add_cpu_figures(
    bench: Bench, sides: list[Contestant], client: str
) -> dict[str, dict[int, dict[str, float]]]:
    """The median CPU per run of each side, by part: a figure each (the machine's, with
    the runner's processes in its note); returned by side and concurrency."""
    cpu: dict[str, dict[int, dict[str, float]]] = {}
    for who in sides:
        for c, rounds in who.cpu.items():
            split = {p: statistics.median(r[p] for r in rounds) for p in PARTS if p in rounds[0]}
            cpu.setdefault(who.name, {})[c] = split
            what = f"{who.name} machine CPU per run c={c}"
            measured = client if who.url else "asyncio worker"
            figure = Figure("versus", what, split["machine"], "µs/run", measured)
            figure.higher_is_better = False
            figure.note = ", ".join(
                f"{p} {split[p]:,.0f}" for p in PARTS if p in split and p != "machine"
            )
            bench.figures.append(figure)
    return cpu


def add_bounds(
    bench: Bench,
    median: dict[str, dict[int, float]],
    cpu: dict[str, dict[int, dict[str, float]]],
    others: list[Contestant],
) -> None:
    """The most a script job could do here even if running a script cost the runner
    nothing beyond the Python job's path: every run of it does all a Python job's run
    does, and the script runs too (its own CPU, measured under its shepherd).

    At c=1 one run follows the other: the Python job's time per run plus the script's
    CPU. With more clients than cores the machine is busy: its cores divided by the
    Python job's machine CPU per run plus the script's."""
    cores = os.cpu_count() or 1
    for c in bench.args.concurrency:
        py, sh = cpu["runner Python job"][c], cpu["runner script job"][c]
        if c == 1:
            per_run = 1e6 / median["runner Python job"][c] + sh["scripts"]
            how = "one at a time: the Python job's time per run + the script's CPU"
        else:
            per_run = (py["machine"] + sh["scripts"]) / min(cores, c)
            how = f"{cores} cores ÷ (the Python job's machine CPU per run + the script's)"
        best = 1e6 / per_run
        figure = Figure("versus", f"runner script job at best c={c}", best, "runs/s", how)
        if others:
            ref = others[0].name
            figure.note = f"{best / median[ref][c]:.2f}× {ref}"
        bench.figures.append(figure)


def ratio_target(ours: str, c: int) -> float | None:
    """Issue 13's targets against the reference (webhookd with 8 workers)."""
    if ours == "runner script job":
        return TARGET_SCRIPT_RATIO
    return TARGET_PYTHON_RATIO_C8 if c == 8 else None


def print_side_by_side(
    sides: list[Contestant], median: dict[str, dict[int, float]], cs: list[int]
) -> None:
    head = ["contestant", *(f"c={c} runs/s" for c in cs), "first byte p50"]
    rows = [head]
    for who in sides:
        ttfb = fmt_value(statistics.median(who.ttfb), "ms") if who.ttfb else ""
        rows.append([who.name, *(f"{median[who.name][c]:,.0f}" for c in cs), ttfb])
    print_rows(rows)


def print_cpu(
    sides: list[Contestant], cpu: dict[str, dict[int, dict[str, float]]], cs: list[int]
) -> None:
    head = ["CPU per run (µs)", *(f"{p} c={c}" for c in cs for p in PARTS)]
    rows = [head]
    for who in sides:
        split = cpu.get(who.name, {})
        cells = [f"{split[c][p]:,.0f}" if p in split.get(c, {}) else "" for c in cs for p in PARTS]
        rows.append([who.name, *cells])
    print_rows(rows)


def print_rows(rows: list[list[str]]) -> None:
    """A table after a blank line: the first column left-aligned, the numbers right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))

"""What one run costs the server, counted instead of timed: a server under cProfile.

    .venv/bin/python scripts/bench_calls.py [--job py/noop] [--requests 2000] [--tree DIR]

Timings on a shared VM move by ±30 % from one minute to the next; call counts do not. This
starts ``python -m cProfile -m runner serve`` (of this checkout, or of ``--tree``, e.g. a
``git worktree`` of an older commit), sends ``--requests`` text-mode POSTs one after the
other on one connection (after 200 to warm up), stops the server with SIGTERM and prints,
per run: the store transactions (``write_now``/``write`` calls), the HTTP writes
(uvicorn's ``send``), the log lines, the Python function calls in all, and the functions
with the most own time (inflated by the profiler, so compare them only with each other).
Issue 13 used it to find a run costing three commits and three writes where two do.
"""

from __future__ import annotations

import argparse
import http.client
import pstats
import sys
import tempfile
import time
from pathlib import Path

from benchkit.constants import ROOT
from benchkit.server import Server

WARMUP = 200
# (what, file suffix, function name): the counts that tell a run's shape.
SHAPE = (
    ("store transactions", "runner/store/sqlite.py", "write_now"),
    ("HTTP writes", "httptools_impl.py", "send"),
    ("log lines", "logging/__init__.py", "emit"),
)


def profile(tree: Path, job: str, requests: int, out: Path, workdir: Path) -> float:
    """Serve ``tree``'s runner under cProfile for the requests; their rate (profiled)."""
    env = {"PYTHONPATH": str(tree)}
    server = Server(sys.executable, workdir, "info", env, wrap=("-m", "cProfile", "-o", str(out)))
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for _ in range(WARMUP):
            conn.request("POST", f"/{job}")
            conn.getresponse().read()
        started = time.perf_counter()
        for _ in range(requests):
            conn.request("POST", f"/{job}")
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 200 or b"state=succeeded" not in body:
                raise SystemExit(f"a run did not succeed: {answer.status} {body[-300:]!r}")
        rate = requests / (time.perf_counter() - started)
        conn.close()
    finally:
        server.stop()  # SIGTERM: a drain, then cProfile writes its file
    return rate


def report(out: Path, runs: int, top: int) -> None:
    stats = pstats.Stats(str(out))
    counted = {name: 0 for name, _, _ in SHAPE}
    own: dict[str, float] = {}
    for (file, line, func), (_, calls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        for name, suffix, wanted in SHAPE:
            if func == wanted and file.endswith(suffix):
                counted[name] += calls
        if calls < runs / 2:
            continue  # start-up and shutdown (imports, the drain), not the runs
        where = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        key = f"{func} ({where.rsplit('/', 1)[-1]}:{line})"
        own[key] = own.get(key, 0.0) + tottime
    for name, count in counted.items():
        print(f"{name:22} {count / runs:7.2f} per run")
    total = stats.total_calls  # type: ignore[attr-defined]
    print(f"{'function calls':22} {total / runs:7.0f} per run (start-up included)")
    print(f"\nown time per run under the profiler ({top} largest, called every other run or more):")
    for key, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {1e6 * seconds / runs:8.1f} µs  {key}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--job", default="py/noop", help="a job of scripts/bench_jobs")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose runner serves")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    if not 1 <= args.requests <= 100_000:
        p.error("--requests must be in [1, 100000]")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "server.prof"
        rate = profile(args.tree.resolve(), args.job, args.requests, out, Path(tmp))
        print(f"{args.requests} runs of {args.job} (+{WARMUP} warm-up), one at a time: "
              f"{rate:.0f} runs/s under the profiler (not a figure to quote)\n")  # fmt: skip
        report(out, args.requests + WARMUP, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

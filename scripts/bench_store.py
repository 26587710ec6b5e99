"""The store at scale: a large history, a very long run, and the server serving both.

    .venv/bin/python scripts/bench_store.py [--runs 1000000] [--lines 10000000]
        [--readers 10] [--old 50000] [--store sqlite|postgresql]

The history is written straight into the state dir's SQLite file (``SQLiteStore.write``
in batches: the same rows a server writes, much faster than through HTTP), then
``runner serve --no-tls`` starts on it in a subprocess. With ``--store postgresql`` the
same is done on a throwaway PostgreSQL 15 (tests/pgcluster.py, its Unix socket; sizes are
the runner's tables with their indexes, and space comes back through autovacuum, not at
once). It prints:

- bytes per event line of the long run (file growth ÷ lines) against the line's length;
- ``/_health`` p50/p99 while ``--readers`` clients each read the long run's whole log at
  once, and each reader's finishing time (fair sharing: all close together);
- ``GET /_runs?job=J&state=A,B,C,D`` latency (p50/p99) at that history size;
- a prune of ``--old`` runs older than the retention (at the next start), with
  ``/_health`` p99 meanwhile and the file's size before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ulid import ULID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.records import Event, RunRecord  # noqa: E402 - after the path is set
from runner.store import SQLiteStore  # noqa: E402
from runner.store.postgres import PostgresStore  # noqa: E402

JOBS = [f"deploy/app{i}" for i in range(10)]
FILTER_STATES = ("failed", "cancelled", "timed_out", "succeeded")
STATES = ["succeeded", "failed", "cancelled", "timed_out"]
LINE = "line 0000001 of a benchmark run"  # 31 characters, as the measure


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _size(store: Any) -> int:
    if isinstance(store, SQLiteStore):
        return store.size()["total"]
    return int((await store.size())["live"])


async def fill(store: Any, runs: int, lines: int, old: int) -> tuple[str, float]:
    """The history, the long run, and ``old`` runs past retention; the long run's id and
    the bytes per event line it cost."""
    await store.open()
    now = time.time()
    batch: list[RunRecord] = []
    for i in range(runs + old):
        created = now - 40 * 86400 - i if i >= runs else now - 20 * 86400 + i * 1.5
        run = RunRecord(str(ULID.from_timestamp(created)), JOBS[i % 10], STATES[i % 4],
                        {"n": i}, f"user:u{i % 7}", created, 60.0, last_event=0)  # fmt: skip
        batch.append(run)
        if len(batch) == 5000:
            await store.write(batch, [])
            batch = []
    await store.write(batch, [])
    before = await _size(store)
    long = RunRecord(str(ULID()), "deploy/long", "succeeded", {}, "user:u0", now, 60.0)
    for start in range(1, lines + 1, 100_000):
        stop = min(start + 100_000, lines + 1)
        events = [Event(long.id, s, "output", LINE, now) for s in range(start, stop)]
        long.last_event = stop - 1
        await store.write([long], events)
    per_line = (await _size(store) - before) / max(lines, 1)
    if not isinstance(store, SQLiteStore):
        await store.pool.execute("ANALYZE")  # as autovacuum would soon: plans at this size
    await store.close()
    return long.id, per_line


async def query_times(store_url: str, state: Path, n: int) -> list[float]:
    """The combined filter's query alone, through a store of its own beside the server's:
    what the database does, without HTTP, JSON and the server's loop."""
    store: Any = PostgresStore(store_url) if store_url else SQLiteStore(state / "runner.db")
    await store.open()
    try:
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            await store.list_runs(job="deploy/app3", states=FILTER_STATES, limit=50)
            times.append(time.monotonic() - t0)
        return times
    finally:
        await store.close()


def spread(values: list[float]) -> str:
    return f"p50 {1000 * statistics.median(values):.2f} ms, p99 {1000 * pct(values, 0.99):.2f} ms"


def get(url: str, timeout: float = 600) -> tuple[float, int]:
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        size = 0
        while chunk := answer.read(1 << 16):
            size += len(chunk)
    return time.monotonic() - t0, size


def fetch(url: str) -> tuple[float, int]:
    """One reader as a process of its own (curl): the client's own work never competes
    with the health poller for this process's interpreter lock."""
    t0 = time.monotonic()
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url],
                         capture_output=True, text=True, check=True, timeout=3600)  # fmt: skip
    return time.monotonic() - t0, int(out.stdout)


def poll_health(
    url: str, until: concurrent.futures.Future[object] | None, seconds: float
) -> list[float]:
    times = []
    end = time.monotonic() + seconds
    while (until is not None and not until.done()) or (until is None and time.monotonic() < end):
        times.append(get(url + "/_health")[0])
        time.sleep(0.01)
    return times


def serve(state: Path, store: str = "") -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env.update(RUNNER_BUILTIN_JOBS="false", RUNNER_RATE_LIMIT="0", RUNNER_LOG_LEVEL="warning")
    env.update(RUNNER_STORE=store)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "serve", "--no-tls", "--port", "0", "--state-dir",
         str(state), "--jobs", str(ROOT / "scripts" / "bench_jobs")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()[-1]


def _file_size(state: Path, store_url: str) -> int:
    if not store_url:
        return (state / "runner.db").stat().st_size

    async def size() -> int:
        store = PostgresStore(store_url)
        await store.open()
        try:
            return await _size(store)
        finally:
            await store.close()

    return asyncio.run(size())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--lines", type=int, default=10_000_000)
    p.add_argument("--readers", type=int, default=10)
    p.add_argument("--old", type=int, default=50_000)
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        url = ""
        if args.store == "postgresql":
            from tests import pgcluster

            cluster = stack.enter_context(pgcluster.running(settings={"fsync": "on"}))
            url = cluster.create_database("bench")
        return _measure(args, url)
    return 0


def _measure(args: argparse.Namespace, store_url: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        t0 = time.monotonic()
        store: Any = PostgresStore(store_url) if store_url else SQLiteStore(state / "runner.db")
        long_id, per_line = asyncio.run(fill(store, args.runs, args.lines, args.old))
        print(f"filled {args.runs:,} runs (+{args.old:,} old) and a {args.lines:,}-line run "
              f"in {time.monotonic() - t0:.0f} s")  # fmt: skip
        print(f"bytes per event line: {per_line:.1f} for {len(LINE)}-character lines "
              f"({per_line / len(LINE):.2f}×)")  # fmt: skip
        size_before = _file_size(state, store_url)
        # The first start prunes the old runs (retention: 30 days), health polled meanwhile.
        server, url = serve(state, store_url)
        try:
            health = poll_health(url, None, 8)
            size_after = _file_size(state, store_url)
            print(f"prune of {args.old:,} old runs at start: /_health {spread(health)}; "
                  f"file {size_before / 2**20:.0f} MiB → {size_after / 2**20:.0f} MiB")  # fmt: skip
            filt = [get(f"{url}/_runs?job=deploy/app3&state={','.join(FILTER_STATES)}"
                        f"&limit=50")[0] for _ in range(200)]  # fmt: skip
            print(f"combined filter at {args.runs:,} runs: {spread(filt)} over HTTP")
            query = asyncio.run(query_times(store_url, state, 200))
            print(f"  the store's query alone (list_runs, this process): {spread(query)}")
            with concurrent.futures.ThreadPoolExecutor(args.readers) as pool:
                readers = [pool.submit(fetch, f"{url}/_runs/{long_id}/log")
                           for _ in range(args.readers)]  # fmt: skip
                all_read = pool.submit(lambda: [r.result() for r in readers])
                health = poll_health(url, all_read, 0)
                ends = sorted(r.result()[0] for r in readers)
            print(f"{args.readers} readers of the {args.lines:,}-line log: finished "
                  f"{ends[0]:.1f}–{ends[-1]:.1f} s ({ends[-1] / ends[0]:.2f}×); "
                  f"/_health {spread(health)} ({len(health)} polls)")  # fmt: skip
        finally:
            server.terminate()
            server.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

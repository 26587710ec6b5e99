"""Replicas on PostgreSQL, measured on this machine in one run (issue 10's figures).

``.venv/bin/python scripts/bench_replicas.py`` starts a throwaway PostgreSQL 15 (tests/
pgcluster.py: initdb in a temp dir, Unix socket only; ``fsync=on`` and
``synchronous_commit=off``, the durability of the SQLite store's ``synchronous=NORMAL``:
a commit survives the process, not a power loss), then real ``runner serve`` processes
over plain HTTP on 127.0.0.1, and prints:

``rps``
    runs/s of ``POST /py/noop`` (text mode, the whole answer read) at ``--concurrency``
    (8) with wrk (or the raw-socket client of scripts/bench.py): SQLite, one process;
    PostgreSQL, one replica; PostgreSQL, ``--workers 2``. Targets: PG ≥ 0.7× SQLite,
    ``--workers 2`` ≥ 1.2× SQLite.
``follow``
    p50/p99 from a line printed on replica B (the job writes ``time.time()`` into it; the
    journal commits it on the next loop turn) to its arrival at an SSE follower on replica
    A. Target p50 ≤ 10 ms.
``takeover``
    ``kill -9`` of the replica running a run → the run ``interrupted`` as seen on the
    survivor, with the default ``lease_timeout`` (15 s) unless ``--lease-timeout``.

Each rps figure comes with the CPU it cost per run: the runner's processes and
PostgreSQL's (every ``postgres`` process of the throwaway cluster), from /proc — on two
shared cores, where the time goes decides what a second worker can add. ``--profile DIR``
also records the one-replica server under load with py-spy (``.venv/bin/pip install
py-spy``) and prints its top functions. Every loop is bounded; everything started is
stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from benchkit.constants import VENV_PYTHON  # noqa: E402
from benchkit.http import fetch_json  # noqa: E402
from benchkit.load import WRK_LUA, run_worker, run_wrk  # noqa: E402
from benchkit.server import Server, profile_server  # noqa: E402

from tests import pgcluster  # noqa: E402

# Comparable durability to SQLite's WAL + synchronous=NORMAL (see the docstring).
PG_SETTINGS = {"fsync": "on", "synchronous_commit": "off", "full_page_writes": "on"}


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            for child in children.read_text().split():
                found += _children(int(child))
    return found


def _commits(cluster: pgcluster.Cluster) -> int:
    """Transactions committed in the cluster so far (the statements of the runners)."""
    return int(cluster.psql("SELECT sum(xact_commit) FROM pg_stat_database") or 0)


def _postgres(cluster: pgcluster.Cluster) -> list[int]:
    head = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    return _children(head)


def rps(
    server: Server, args: argparse.Namespace, workdir: Path, cluster: pgcluster.Cluster
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.port}/py/noop"
    wrk = shutil.which("wrk")
    if wrk:
        lua = workdir / "post.lua"
        lua.write_text(WRK_LUA)
        run_wrk(wrk, url, lua, args.concurrency, args.warmup, latency=False)
        runner, pg = _children(server.pid), _postgres(cluster)
        before = _cpu(runner), _cpu(pg), _commits(cluster)
        result = run_wrk(wrk, url, lua, args.concurrency, args.seconds)
        after = _cpu(runner), _cpu(pg), _commits(cluster)
        n = max(1, result["requests"])
        result["commits_per_run"] = round((after[2] - before[2]) / n, 2)
        result["cpu_ms_runner"] = round(1000 * (after[0] - before[0]) / n, 3)
        result["cpu_ms_postgres"] = round(1000 * (after[1] - before[1]) / n, 3)
        result["client"] = "wrk"
    else:
        request = "POST /py/noop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        spec = {"kind": "load", "port": server.port, "request": request,
                "concurrency": args.concurrency, "warmup": args.warmup,
                "seconds": args.seconds}  # fmt: skip
        result = run_worker(spec, str(VENV_PYTHON))
        result["client"] = "python"
    return result


def _profile(server: Server, args: argparse.Namespace) -> str:
    url = f"http://127.0.0.1:{server.port}/py/noop"
    lua = args.profile / "post.lua"
    args.profile.mkdir(parents=True, exist_ok=True)
    lua.write_text(WRK_LUA)
    wrk = shutil.which("wrk")

    def load() -> object:
        if wrk is None:
            return None
        return run_wrk(wrk, url, lua, args.concurrency, args.seconds, latency=False)

    raw = args.profile / "pg-1.raw"
    return "py-spy, one PostgreSQL replica under load:\n" + profile_server(
        server, raw, args.seconds, load, 25
    )


def follow_latency(a: Server, b: Server, lines: int, pause: float) -> list[float]:
    """Start a stamping job on B, follow it on A: each line's arrival minus its stamp."""
    started = fetch_json(
        b.port, "POST", f"/py/stamps?n={lines}&pause={pause}", {"Prefer": "respond-async"}
    )
    run_id = started["id"]
    latencies: list[float] = []
    with socket.create_connection(("127.0.0.1", a.port), timeout=30) as sock:
        head = f"GET /_runs/{run_id}/events HTTP/1.1\r\nHost: x\r\n"
        sock.sendall((head + "Accept: text/event-stream\r\n\r\n").encode())
        buf = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            now = time.time()
            if not chunk:
                break
            buf += chunk
            *frames, buf = buf.split(b"\n\n")
            done = False
            for frame in frames:
                text = frame.decode(errors="replace")
                if "event: output" in text:
                    stamp = float(text.rsplit("data: ", 1)[1].split()[0])
                    latencies.append((now - stamp) * 1000)
                if "event: done" in text:
                    done = True
            if done:
                break
    return latencies


def takeover(a: Server, b: Server) -> float:
    """Seconds from kill -9 of A (running a run) to B showing the run interrupted."""
    started = fetch_json(a.port, "POST", "/py/sleep?seconds=120", {"Prefer": "respond-async"})
    run_id = started["id"]
    deadline = time.monotonic() + 30
    # Running as the store says (B reads the store): the job has started on A.
    while fetch_json(b.port, "GET", f"/_runs/{run_id}")["state"] != "running":
        if time.monotonic() > deadline:
            raise RuntimeError("the run never started")
        time.sleep(0.02)
    os.kill(a.pid, signal.SIGKILL)
    killed = time.monotonic()
    deadline = killed + 120
    while fetch_json(b.port, "GET", f"/_runs/{run_id}")["state"] != "interrupted":
        if time.monotonic() > deadline:
            tail = b.err_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the run was never marked interrupted; survivor's log:\n{tail}")
        time.sleep(0.02)
    return time.monotonic() - killed


def _server(workdir: Path, name: str, env: dict[str, str]) -> Server:
    folder = workdir / name
    folder.mkdir()
    server = Server(str(VENV_PYTHON), folder, "warning", env)
    server.start()
    return server


def _check(server: Server) -> int:
    """Runs of the history that did not succeed (the figure would not count then)."""
    page = fetch_json(server.port, "GET", "/_runs?state=failed,interrupted,cancelled&limit=50")
    return len(page["runs"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3, help="rps: alternating rounds (median)")
    p.add_argument("--lines", type=int, default=300, help="follow: lines printed")
    p.add_argument("--pause", type=float, default=0.01, help="follow: seconds between lines")
    p.add_argument("--lease-timeout", type=float, default=15.0)
    p.add_argument("--parts", default="rps,follow,takeover")
    p.add_argument("--profile", type=Path, help="py-spy the PostgreSQL replica under load")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    figures: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    servers: list[Server] = []
    try:
        with pgcluster.running(settings=PG_SETTINGS) as cluster:
            if "rps" in parts:
                configs = {
                    "sqlite": {},
                    "pg-1": {"RUNNER_STORE": cluster.create_database("rps1")},
                    "pg-workers-2": {"RUNNER_STORE": cluster.create_database("rps2"),
                                     "RUNNER_WORKERS": "2"},
                }  # fmt: skip
                # Rounds alternate the three, so that a busy spell on the shared cores
                # falls on all of them; each figure is the median of its rounds.
                results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
                for round_ in range(args.rounds):
                    for name, env in configs.items():
                        server = _server(workdir, f"{name}-{round_}", env)
                        servers.append(server)
                        result = rps(server, args, workdir, cluster)
                        result["not_succeeded"] = _check(server)
                        if name == "pg-1" and args.profile and round_ == args.rounds - 1:
                            print(_profile(server, args), flush=True)
                        results[name].append(result)
                        print(f"rps {name}: {result['rps']:.0f} runs/s ({result})", flush=True)
                        server.stop()
                        servers.remove(server)
                for name, rounds in results.items():
                    middle = sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]
                    figures[f"rps {name}"] = {**middle, "rounds": [r["rps"] for r in rounds]}
                base = figures["rps sqlite"]["rps"]
                for name in ("pg-1", "pg-workers-2"):
                    figures[f"rps {name}"]["vs_sqlite"] = figures[f"rps {name}"]["rps"] / base
            if "follow" in parts or "takeover" in parts:
                url = cluster.create_database("replicas")
                env = {"RUNNER_STORE": url, "RUNNER_LEASE_TIMEOUT": str(args.lease_timeout)}
                a, b = _server(workdir, "a", env), _server(workdir, "b", env)
                servers += [a, b]
                if "follow" in parts:
                    lat = follow_latency(a, b, args.lines, args.pause)
                    figures["follow"] = {
                        "lines": len(lat),
                        "p50_ms": statistics.median(lat),
                        "p99_ms": sorted(lat)[int(len(lat) * 0.99) - 1],
                    }
                    print(f"follow B→A: {figures['follow']}", flush=True)
                if "takeover" in parts:
                    seconds = takeover(a, b)
                    figures["takeover"] = {"seconds": seconds, "lease_timeout": args.lease_timeout}
                    print(f"kill -9 → interrupted: {seconds:.2f} s", flush=True)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if "rps" in parts:
        print(
            f"\nSQLite 1 process {figures['rps sqlite']['rps']:.0f} runs/s; PostgreSQL 1 replica "
            f"{figures['rps pg-1']['vs_sqlite']:.2f}x (target >= 0.7x); --workers 2 "
            f"{figures['rps pg-workers-2']['vs_sqlite']:.2f}x (target >= 1.2x)"
        )
        for name in ("sqlite", "pg-1", "pg-workers-2"):
            f = figures[f"rps {name}"]
            if "cpu_ms_runner" in f:
                print(f"  CPU per run, {name}: runner {f['cpu_ms_runner']:.3f} ms, "
                      f"PostgreSQL {f['cpu_ms_postgres']:.3f} ms; "
                      f"{f['commits_per_run']:.2f} transactions per run")  # fmt: skip
    if "follow" in figures:
        print(f"cross-replica follow p50 {figures['follow']['p50_ms']:.1f} ms (target <= 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

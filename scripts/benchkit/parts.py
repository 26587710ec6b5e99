"""The parts of the benchmark: throughput, latency, replay, memory per stream."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit.constants import (
    BAD_STATES,
    FINAL_STATES,
    JOB_NAMES,
    TARGET_REPLAY_LINES_S,
    TARGET_RPS,
    TARGET_STREAM_KIB,
    TARGET_TTFB_P50_MS,
)
from benchkit.figures import Figure, fmt_value
from benchkit.http import Response, fetch, fetch_json, request_bytes
from benchkit.load import run_worker, run_wrk
from benchkit.server import Server, profile_server

# -- the parts -------------------------------------------------------------------------


@dataclass
class Bench:
    server: Server
    args: argparse.Namespace
    python: str
    wrk: str | None
    lua: Path
    figures: list[Figure]

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        if not self.args.json:
            print(f"  {figure.part:10} {figure.what}: {fmt_value(figure.value, figure.unit)}")

    def failed_runs(self, job: str) -> int:
        q = f"/_runs?job={job}&state={BAD_STATES}&limit=500"
        return len(fetch_json(self.server.port, "GET", q)["runs"])

    def check_job(self, job: str) -> None:
        resp = fetch(self.server.port, "POST", f"/{job}")
        if resp.status != 200 or b"state=succeeded" not in resp.body:
            raise RuntimeError(f"POST /{job} did not succeed: {resp.status} {bytes(resp.body)!r}")

    # rps ---------------------------------------------------------------------------

    def load(self, job: str, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
        if self.wrk is not None:
            url = f"{self.server.url}/{job}"
            if warmup > 0:
                run_wrk(self.wrk, url, self.lua, concurrency, warmup, latency=False)
            result = run_wrk(self.wrk, url, self.lua, concurrency, seconds)
            result["client"] = f"wrk -t1 -c{concurrency}"
            return result
        spec = {
            "kind": "load",
            "port": self.server.port,
            "request": request_bytes("POST", f"/{job}", self.server.port).decode("latin-1"),
            "concurrency": concurrency,
            "seconds": seconds,
            "warmup": warmup,
        }
        result = run_worker(spec, self.python)
        result["client"] = f"python asyncio c={concurrency}"
        return result

    def part_rps(self) -> None:
        for kind in self.args.jobs:
            job = JOB_NAMES[kind]
            self.check_job(job)
            for c in self.args.concurrency:
                bad_before = self.failed_runs(job)
                if self.args.warmup > 0:
                    self.load(job, c, self.args.warmup, 0)
                # CPU time per run is steadier than runs/s on a shared VM: time the host
                # takes away (steal) counts in the wall clock, not in the process's CPU.
                cpu_before, t0 = self.server.cpu_seconds(), time.monotonic()
                r = self.load(job, c, self.args.seconds, 0)
                cpu_after, wall = self.server.cpu_seconds(), time.monotonic() - t0
                bad = self.failed_runs(job) - bad_before
                errors = r["errors"] + bad
                own = 100 * (cpu_after[0] - cpu_before[0]) / wall
                kids = 100 * (cpu_after[1] - cpu_before[1]) / wall
                note = (
                    f"{r['requests']} runs; complete p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms;"
                    f" server CPU {own:.0f}%" + (f", its jobs {kids:.0f}%" if kids >= 1 else "")
                )
                if errors or r.get("socket_errors"):
                    note += f"; ERRORS {errors} {r.get('socket_errors', '')}".rstrip()
                self.add(
                    Figure(
                        "rps",
                        f"{job} text c={c}",
                        r["rps"],
                        "runs/s",
                        r["client"],
                        TARGET_RPS.get((kind, c)),
                        note=note,
                    )
                )
                if r["requests"]:
                    per_run = 1e6 * (cpu_after[0] - cpu_before[0]) / r["requests"]
                    self.add(
                        Figure("rps", f"{job} server CPU per run c={c}", per_run, "µs/run",
                               r["client"], None, False, "the server process, not its jobs")
                    )  # fmt: skip
                if self.args.profile:
                    self.profile(f"rps-{kind}-c{c}", functools.partial(self.load, job, c, 5, 0))

    def profile(self, name: str, load: Callable[[], object]) -> None:
        out_dir = Path(self.args.profile)
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = profile_server(self.server, out_dir / f"{name}.txt", 5, load, self.args.top)
        print(f"\nprofile {name} (py-spy, server pid {self.server.pid}):\n{summary}\n", flush=True)

    # latency -----------------------------------------------------------------------

    def part_latency(self) -> None:
        for kind in self.args.jobs:
            job = JOB_NAMES[kind]
            spec = {
                "kind": "latency",
                "port": self.server.port,
                "request": request_bytes("POST", f"/{job}", self.server.port).decode("latin-1"),
                "count": self.args.latency_requests,
                "seconds": self.args.seconds,
                "warmup": min(1.0, self.args.warmup),
            }
            r = run_worker(spec, self.python)
            client = "python socket c=1"
            note = f"{r['requests']} requests"
            if r["errors"]:
                note += f"; ERRORS {r['errors']}"
            self.add(
                Figure(
                    "latency",
                    f"{job} first byte p50",
                    r["ttfb_p50"],
                    "ms",
                    client,
                    TARGET_TTFB_P50_MS,
                    higher_is_better=False,
                    note=note,
                )
            )
            self.add(Figure("latency", f"{job} first byte p99", r["ttfb_p99"], "ms", client))
            self.add(Figure("latency", f"{job} last byte p50", r["total_p50"], "ms", client))
            self.add(Figure("latency", f"{job} last byte p99", r["total_p99"], "ms", client))

    # replay ------------------------------------------------------------------------

    def start_async(self, path: str) -> str:
        resp = fetch(self.server.port, "POST", path, {"Prefer": "respond-async"})
        if resp.status != 202:
            raise RuntimeError(f"POST {path}: expected 202, got {resp.status}")
        run_id: str = json.loads(resp.body)["id"]
        return run_id

    def wait_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = fetch_json(self.server.port, "GET", f"/_runs/{run_id}")
            if run["state"] in FINAL_STATES:
                return run
            time.sleep(0.05)
        raise RuntimeError(f"run {run_id} did not finish within {timeout:g} s")

    def read_repeatedly(self, path: str, times: int) -> None:
        for _ in range(times):
            fetch(self.server.port, "GET", path, timeout=120, keep_body=False)

    def part_replay(self) -> None:
        n = self.args.lines
        t0 = time.perf_counter()
        run_id = self.start_async(f"/py/lines?n={n}")
        run = self.wait_run(run_id, timeout=max(60.0, n / 2000))
        wall = time.perf_counter() - t0
        if run["state"] != "succeeded":
            raise RuntimeError(f"the {n}-line run ended {run['state']}: {run.get('reason')}")
        self.add(
            Figure(
                "replay",
                f"record {n:,} lines (run, async)",
                n / wall,
                "lines/s",
                "python socket",
                note=f"{wall:.2f} s from POST to final state; run duration {run['duration']:.2f} s",
            )
        )
        for what, path, count in (
            ("SSE /events", f"/_runs/{run_id}/events", count_sse_output),
            ("text /log", f"/_runs/{run_id}/log", count_text_output),
        ):
            rates, times, got, size = [], [], 0, 0
            for _ in range(self.args.replay_repeat):
                t = time.perf_counter()
                resp = fetch(self.server.port, "GET", path, timeout=120)
                elapsed = time.perf_counter() - t
                got, size = count(resp.body), len(resp.body)
                if resp.status != 200 or got != n:
                    raise RuntimeError(f"GET {path}: status {resp.status}, {got} lines, not {n}")
                rates.append(n / elapsed)
                times.append(elapsed)
            self.add(
                Figure(
                    "replay",
                    f"{what} of {n:,} lines",
                    statistics.median(rates),
                    "lines/s",
                    "python socket",
                    TARGET_REPLAY_LINES_S,
                    note=f"median of {len(rates)}: {statistics.median(times) * 1000:.0f} ms, "
                    f"{size / 1e6:.1f} MB; best {max(rates):,.0f}/s",
                )
            )
            if self.args.profile:
                name = f"replay-{what.split()[0].lower()}"
                self.profile(name, functools.partial(self.read_repeatedly, path, 5))

    # SSE memory --------------------------------------------------------------------

    def open_streams(self, path: str, count: int, timeout: float) -> list[socket.socket]:
        """Open ``count`` SSE streams, each read until its first event arrived."""
        socks: list[socket.socket] = []
        req = request_bytes("GET", path, self.server.port, {"Accept": "text/event-stream"})
        deadline = time.monotonic() + timeout
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)
                socks.append(sock)
                sock.sendall(req)
                resp = Response()
                while b"\n\n" not in resp.body:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("an SSE stream closed before its first event")
                    resp.feed(data)
                if resp.status != 200:
                    raise RuntimeError(f"GET {path}: HTTP {resp.status}")
        except BaseException:
            close_all(socks)
            raise
        return socks

    def part_sse_memory(self) -> None:
        n = self.args.streams
        run_id = self.start_async(f"/py/sleep?seconds={self.args.sleep}")
        path = f"/_runs/{run_id}/events"
        try:
            # Warm up the code paths (imports, caches, allocator arenas) before the baseline.
            close_all(self.open_streams(path, 50, 30))
            time.sleep(0.5)
            before, fds_before = self.server.rss_kib(), self.server.open_fds()
            socks = self.open_streams(path, n, 60)
            try:
                time.sleep(1.0)
                after, fds_after = self.server.rss_kib(), self.server.open_fds()
                state = fetch_json(self.server.port, "GET", f"/_runs/{run_id}")["state"]
                if state != "running":
                    raise RuntimeError(f"the sleeping run ended ({state}) while measuring")
            finally:
                close_all(socks)
            time.sleep(1.0)
            released = self.server.rss_kib()
        finally:
            with contextlib.suppress(Exception):
                fetch(self.server.port, "POST", f"/_runs/{run_id}/cancel")
        self.add(
            Figure(
                "sse-memory",
                f"RSS per idle SSE stream ({n} open)",
                (after - before) / n,
                "KiB",
                "python socket",
                TARGET_STREAM_KIB,
                higher_is_better=False,
                note=f"RSS {before / 1024:.1f} → {after / 1024:.1f} MiB "
                f"({released / 1024:.1f} MiB after closing); fds {fds_before} → {fds_after}",
            )
        )


def count_sse_output(body: bytearray) -> int:
    return body.count(b"event: output\n")


def count_text_output(body: bytearray) -> int:
    return body.count(b"\n") - 1  # the last line is the runner's result line


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()

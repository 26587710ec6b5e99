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
import asyncio
import collections
import contextlib
import functools
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JOBS = HERE / "bench_jobs"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PARTS = ("rps", "latency", "replay", "sse-memory")
FINAL_STATES = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")
BAD_STATES = "failed,cancelled,timed_out,interrupted"
JOB_NAMES = {"python": "py/noop", "script": "sh/noop"}

# Targets on the reference machine (2 cores shared by client and server).
TARGET_RPS = {("python", 8): 2500.0, ("script", 8): 1270.0}
TARGET_TTFB_P50_MS = 2.0
TARGET_REPLAY_LINES_S = 200_000.0
TARGET_STREAM_KIB = 64.0


# -- figures ---------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured number, with what it is compared to and who measured it."""

    part: str
    what: str
    value: float
    unit: str
    client: str
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def fmt_value(value: float, unit: str) -> str:
    if unit in ("runs/s", "lines/s", "req/s"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "KiB":
        return f"{value:,.1f} KiB"
    return f"{value:g} {unit}"


def print_table(figures: list[Figure]) -> None:
    rows = [("part", "figure", "value", "target", "ok", "client", "note")]
    for f in figures:
        target = ""
        if f.target is not None:
            target = ("≥ " if f.higher_is_better else "≤ ") + fmt_value(f.target, f.unit)
        ok = {None: "", True: "yes", False: "NO"}[f.ok]
        rows.append((f.part, f.what, fmt_value(f.value, f.unit), target, ok, f.client, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank; values need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- HTTP/1.1 on raw sockets -----------------------------------------------------------


class Response:
    """An incremental HTTP/1.1 response parser: Content-Length or chunked bodies."""

    __slots__ = (
        "_buf",
        "_chunk_left",
        "_pos",
        "_seen",
        "body",
        "done",
        "headers",
        "keep",
        "length",
        "status",
    )

    def __init__(self, *, keep_body: bool = True) -> None:
        self._buf = bytearray()
        self._pos = 0
        # -1: a chunk-size line is next; -2: the CRLF after a chunk; -3: the final CRLF.
        self._chunk_left = -1
        self._seen = 0  # body bytes, when they are not kept
        self.status = 0
        self.headers: dict[str, str] = {}
        self.length: int | None = None  # None while headers unread; -1 for chunked
        self.body = bytearray()
        self.keep = keep_body
        self.done = False

    def feed(self, data: bytes) -> bool:
        """Take the next bytes of the stream; True once the response is complete."""
        self._buf += data
        if self.length is None and not self._headers():
            return False
        if self.length is not None and self.length >= 0:
            self._take(len(self._buf) - self._pos)
            self.done = len(self.body) >= self.length if self.keep else self._seen >= self.length
        else:
            self._chunks()
        if self._pos > 1 << 20:
            del self._buf[: self._pos]
            self._pos = 0
        return self.done

    def _take(self, n: int) -> None:
        if self.keep:
            self.body += memoryview(self._buf)[self._pos : self._pos + n]
        else:
            self._seen += n
        self._pos += n

    def _headers(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._pos = end + 4
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self.length = -1
        else:
            self.length = int(self.headers.get("content-length", "0"))
        return True

    def _chunks(self) -> None:
        buf = self._buf
        while not self.done:
            if self._chunk_left == -1:
                eol = buf.find(b"\r\n", self._pos)
                if eol < 0:
                    return
                size = int(bytes(buf[self._pos : eol]).split(b";")[0], 16)
                self._pos = eol + 2
                self._chunk_left = size if size else -3
            elif self._chunk_left == -3:  # after the last chunk: (no trailers) CRLF
                if len(buf) - self._pos < 2:
                    return
                self._pos += 2
                self.done = True
            elif self._chunk_left == -2:  # CRLF after a chunk's data
                if len(buf) - self._pos < 2:
                    return
                self._pos += 2
                self._chunk_left = -1
            else:
                n = min(self._chunk_left, len(buf) - self._pos)
                if n == 0:
                    return
                self._take(n)
                self._chunk_left -= n
                if self._chunk_left == 0:
                    self._chunk_left = -2


def request_bytes(
    method: str, path: str, port: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method in ("POST", "PUT") or body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def fetch(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30.0,
    keep_body: bool = True,
) -> Response:
    """One request on a fresh connection, read to the end of the response."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_bytes(method, path, port, {**(headers or {}), "Connection": "close"}))
        resp = Response(keep_body=keep_body)
        while not resp.done:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError(f"{method} {path}: connection closed mid-response")
            resp.feed(data)
    return resp


def fetch_json(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    resp = fetch(port, method, path, headers)
    if resp.status >= 400:
        raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {bytes(resp.body[:300])!r}")
    return json.loads(resp.body)


# -- client worker (a separate process) ------------------------------------------------


def worker_latency(spec: dict[str, Any]) -> dict[str, Any]:
    """One request at a time on a keep-alive connection: first-byte and last-byte times."""
    req = spec["request"].encode("latin-1")
    ttfb: list[float] = []
    total: list[float] = []
    errors = 0
    clock = time.perf_counter
    with socket.create_connection(("127.0.0.1", spec["port"]), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        end_warmup = time.monotonic() + spec["warmup"]
        deadline = end_warmup + spec["seconds"]
        started = 0.0
        n = 0
        while n < spec["count"] and time.monotonic() < deadline:
            warm = time.monotonic() < end_warmup
            resp = Response()
            t0 = clock()
            sock.sendall(req)
            data = sock.recv(65536)
            t1 = clock()
            if not data:
                raise ConnectionError("server closed the connection")
            while not resp.feed(data):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
            t2 = clock()
            if warm:
                continue
            if not started:
                started = t0
            n += 1
            if resp.status != 200 or b"state=succeeded" not in resp.body[-200:]:
                errors += 1
            ttfb.append((t1 - t0) * 1000)
            total.append((t2 - t0) * 1000)
        elapsed = clock() - started if started else 0.0
    return {
        "requests": n,
        "errors": errors,
        "seconds": elapsed,
        "ttfb_p50": percentile(ttfb, 50),
        "ttfb_p99": percentile(ttfb, 99),
        "total_p50": percentile(total, 50),
        "total_p99": percentile(total, 99),
    }


async def _load_async(spec: dict[str, Any]) -> dict[str, Any]:
    """``concurrency`` keep-alive connections, each sending the next request on completion."""
    loop = asyncio.get_running_loop()
    req = spec["request"].encode("latin-1")
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    start = clock() + spec["warmup"]
    stop = start + spec["seconds"]
    counts = {"done": 0, "errors": 0}
    latencies: list[float] = []

    class Conn(asyncio.Protocol):
        def __init__(self, finished: asyncio.Future[None]) -> None:
            self.finished = finished
            self.resp = Response()
            self.t0 = 0.0
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports do not subclass asyncio.Transport; they behave as one.
            self.transport = cast(asyncio.Transport, transport)
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.send()

        def send(self) -> None:
            assert self.transport is not None
            self.resp = Response()
            self.t0 = clock()
            self.transport.write(req)

        def data_received(self, data: bytes) -> None:
            if not self.resp.feed(data):
                return
            now = clock()
            if self.t0 >= start:
                counts["done"] += 1
                latencies.append((now - self.t0) * 1000)
                if self.resp.status != 200 or b"state=succeeded" not in self.resp.body[-200:]:
                    counts["errors"] += 1
            if now < stop:
                self.send()
            else:
                assert self.transport is not None
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.finished.done():
                self.finished.set_result(None)

    waits = []
    for _ in range(spec["concurrency"]):
        finished: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(functools.partial(Conn, finished), "127.0.0.1", spec["port"])
        waits.append(finished)
    await asyncio.wait_for(asyncio.gather(*waits), spec["warmup"] + spec["seconds"] + 30)
    elapsed = clock() - start
    return {
        "requests": counts["done"],
        "errors": counts["errors"],
        "seconds": elapsed,
        "rps": counts["done"] / elapsed if elapsed > 0 else 0.0,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec["kind"] == "latency":
        result = worker_latency(spec)
    else:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        result = asyncio.run(_load_async(spec))
    json.dump(result, sys.stdout)


def run_worker(spec: dict[str, Any], python: str) -> dict[str, Any]:
    limit = spec.get("warmup", 0) + spec.get("seconds", 0) + 60
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"client worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


# -- wrk ---------------------------------------------------------------------------------

WRK_LUA = 'wrk.method = "POST"\nwrk.headers["Content-Length"] = "0"\n'
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(
    wrk: str, url: str, lua: Path, concurrency: int, seconds: float, *, latency: bool = True
) -> dict[str, Any]:
    args = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(lua)]
    args += ["--timeout", "10s"] + (["--latency"] if latency else []) + [url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = proc.stdout
    if proc.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out[-1000:]} {proc.stderr[-1000:]}")
    result: dict[str, Any] = {"rps": float(re.search(r"Requests/sec:\s*([\d.]+)", out)[1])}  # type: ignore[index]
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    result["requests"] = int(m[1]) if m else 0
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    sock_errors = re.search(r"Socket errors: (.*)", out)
    result["errors"] = int(bad[1]) if bad else 0
    result["socket_errors"] = sock_errors[1] if sock_errors else ""
    for q in ("50", "99"):
        m = re.search(rf"^\s*{q}(?:\.000)?%\s+(\S+)", out, re.M)
        result[f"p{q}"] = _wrk_ms(m[1]) if m else float("nan")
    return result


# -- the server under test ---------------------------------------------------------------


class Server:
    """``python -m runner serve`` in a fresh state dir; stopped by :meth:`stop`."""

    def __init__(self, python: str, workdir: Path, log_level: str, env: dict[str, str]) -> None:
        self.python = python
        self.workdir = workdir
        self.log_level = log_level
        self.extra_env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0

    def start(self, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        env.update(
            RUNNER_BUILTIN_JOBS="false",
            RUNNER_MAX_RUNNING="64",
            RUNNER_MAX_QUEUED="10000",
            # Load from one address on purpose: the per-principal limit is not measured here.
            RUNNER_RATE_LIMIT="0",
            RUNNER_LOG_LEVEL=self.log_level,
            RUNNER_LOG_FORMAT="json",
            RUNNER_DRAIN_TIMEOUT="2",
            RUNNER_KILL_GRACE="1",
        )
        env.update(self.extra_env)
        state = self.workdir / "state"
        out = self.workdir / "server.out"
        self.err_path = self.workdir / "server.err"
        cmd = [self.python, "-m", "runner", "serve", "--port", "0", "--no-tls"]
        cmd += ["--state-dir", str(state), "--jobs", str(JOBS)]
        with out.open("wb") as stdout, self.err_path.open("wb") as stderr:
            # Own session: a Ctrl-C in the terminal reaches only us; we stop the server.
            self.proc = subprocess.Popen(
                cmd, stdout=stdout, stderr=stderr, cwd=self.workdir, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self.url:
            first = out.read_text().split("\n", 1)
            if len(first) == 2 and first[0].startswith("runner listening on "):
                self.url = first[0].removeprefix("runner listening on ").strip()
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not print its URL in time")
            time.sleep(0.02)
        self.port = int(self.url.rsplit(":", 1)[1])
        while True:
            with contextlib.suppress(OSError):
                if fetch(self.port, "GET", "/_ready", timeout=5).status == 200:
                    return
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("GET /_ready did not answer 200 in time")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.err_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{tail}")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user + system) of the server itself, and of its reaped children."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        own = (int(fields[11]) + int(fields[12])) / tick
        children = (int(fields[13]) + int(fields[14])) / tick
        return own, children

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        """SIGTERM (drain), then SIGKILL if it does not stop within a few seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
                return


# -- profiling ---------------------------------------------------------------------------


def summarize_profile(raw: Path, top: int) -> str:
    """Top functions by own samples and by inclusive samples from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f.replace(str(ROOT) + "/", "") for f in frames]
        frames = [re.sub(r"\S*/site-packages/", "", f) for f in frames]
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples (idle excluded)", "  own time:"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive time:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top * 2)]
    return "\n".join(lines)


def profile_server(
    server: Server, out: Path, seconds: float, load: Callable[[], object], top: int
) -> str:
    """Run ``load`` while py-spy samples the server; return a summary."""
    py_spy = shutil.which("py-spy") or str(VENV_PYTHON.parent / "py-spy")
    if not Path(py_spy).exists():
        return "  py-spy not found: .venv/bin/pip install py-spy"
    cmd = [py_spy, "record", "--pid", str(server.pid), "--rate", "200", "--format", "raw"]
    cmd += ["--duration", str(max(1, round(seconds))), "--output", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # let py-spy attach
        load()
        spy.wait(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if not out.exists():
        return f"  py-spy wrote nothing: {spy.stderr.read().decode()[-500:] if spy.stderr else ''}"
    return summarize_profile(out, top)


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
                cpu_before, t0 = self.server.cpu_seconds(), time.monotonic()
                r = self.load(job, c, self.args.seconds, self.args.warmup)
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
    p.add_argument("--json", action="store_true", help="print the figures as JSON only")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the state dir and server logs")
    args = p.parse_args(argv)
    for item in args.env:
        if not re.fullmatch(r"RUNNER_[A-Z_]+=.*", item):
            p.error(f"--env {item!r}: expected RUNNER_NAME=value")
    if args.seconds <= 0 or args.seconds > 600 or args.streams < 1 or args.lines < 1:
        p.error("--seconds must be in (0, 600]; --streams and --lines at least 1")
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

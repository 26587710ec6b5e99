"""Load generators: a client worker in a separate process (latency, keep-alive load) and
wrk when it is installed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

from benchkit.constants import HERE
from benchkit.figures import percentile
from benchkit.http import Response

# -- client worker (a separate process) ------------------------------------------------


def worker_latency(spec: dict[str, Any]) -> dict[str, Any]:
    """One request at a time on a keep-alive connection: first-byte and last-byte times.

    A response counts as an error unless it is a 200 whose end holds ``spec["expect"]``
    (the runner's result line by default; another server's answer may hold anything)."""
    req = spec["request"].encode("latin-1")
    expect = spec.get("expect", "state=succeeded").encode()
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
            if resp.status != 200 or expect not in resp.body[-200:]:
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
    elif spec["kind"] == "ceiling":
        from benchkit.ceiling import ceiling_main

        result = ceiling_main(spec)
    else:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        result = asyncio.run(_load_async(spec))
    json.dump(result, sys.stdout)


def run_worker(spec: dict[str, Any], python: str) -> dict[str, Any]:
    limit = spec.get("warmup", 0) + spec.get("seconds", 0) + 60
    proc = subprocess.run(
        [python, str(HERE / "bench.py"), "--worker", json.dumps(spec)],
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

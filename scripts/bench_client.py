"""The client's figures: its added latency to the first output line against bare curl on
the same job, and how long it takes to resume after its connection is cut.

    .venv/bin/python scripts/bench_client.py [--runs 30] [--cuts 30]

A server (``runner serve``, TLS, the test jobs) runs in a subprocess. ``first line``:
each round starts ``runner call py/echo rg=a`` and ``curl -sN -X POST …/py/echo?rg=a``
(text mode), alternated, and times each from the process's start to its first output line
on stdout. ``resume``: ``runner call`` follows ``py/lines`` (a line every 10 ms) through a
real TCP proxy that cuts the connection every 0.5 s; the longest silence between printed
lines around each cut, less the 10 ms a line takes anyway, is the resume time (lines
missed meanwhile arrive in a burst on resuming). Medians
and percentiles are printed; the machine is shared, so compare within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.client.proxy import CuttingProxy  # noqa: E402 - after the path is set

JOBS = ROOT / "tests" / "jobs"


def serve(state: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env.update(RUNNER_BUILTIN_JOBS="false", RUNNER_RATE_LIMIT="0", RUNNER_LOG_LEVEL="warning")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "serve", "--port", "0", "--state-dir", str(state),
         "--jobs", str(JOBS)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    time.sleep(1.0)
    return proc, url


def first_line(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``cmd`` to its first line on stdout."""
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env) as p:
        assert p.stdout is not None
        p.stdout.readline()
        took = time.perf_counter() - t0
        p.communicate(timeout=30)
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="rounds of the first-line race")
    parser.add_argument("--cuts", type=int, default=30, help="cuts to resume from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        server, url = serve(state)
        cacert = str(state / "tls" / "cert.pem")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        env.update(RUNNER_URL=url, RUNNER_CACERT=cacert)
        try:
            client = [sys.executable, "-m", "runner", "call", "py/echo", "rg=a"]
            curl = ["curl", "-sN", "--cacert", cacert, "-X", "POST", f"{url}/py/echo?rg=a"]
            times: dict[str, list[float]] = {"runner call": [], "curl": []}
            for _ in range(args.runs):
                times["runner call"].append(first_line(client, env))
                times["curl"].append(first_line(curl, env))
            for name, values in times.items():
                print(f"first line, {name:11}: p50 {1000 * statistics.median(values):6.1f} ms"
                      f"  p90 {1000 * pct(values, 0.9):6.1f} ms  ({len(values)} runs)")  # fmt: skip
            added = statistics.median(times["runner call"]) - statistics.median(times["curl"])
            print(f"added by the client (p50 difference): {1000 * added:.1f} ms")
            resume(url, env, args.cuts)
        finally:
            server.terminate()
            server.wait(10)
    return 0


def resume(url: str, env: dict[str, str], cuts: int) -> None:
    """Cut every 0.5 s; time from each cut to the next printed line."""
    port = int(url.rsplit(":", 1)[1])
    every, pause = 0.5, 0.01
    lines = int(cuts * every / pause * 1.2)
    proxy = CuttingProxy(port, cut_every=every)
    with proxy.running():
        proxied = dict(env, RUNNER_URL=f"https://127.0.0.1:{proxy.port}")
        cmd = [sys.executable, "-m", "runner", "call", "py/lines", f"n={lines}", "every=1",
               f"pause={pause}"]  # fmt: skip
        arrivals: list[float] = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=proxied, text=True) as p:  # fmt: skip
            assert p.stdout is not None
            for _ in p.stdout:
                arrivals.append(time.monotonic())
        cut_times = list(proxy.cut_times)
    # Lines missed while disconnected come in a burst on resuming: the silence around a
    # cut, less the 10 ms a line takes anyway, is how long the client took to resume.
    gaps = []
    pairs = list(zip(arrivals, arrivals[1:], strict=False))
    for cut in cut_times:
        near = [b - a for a, b in pairs if cut - 0.1 <= b <= cut + 1.0]
        if near:
            gaps.append(max(0.0, max(near) - pause))
    if not gaps:
        print("resume: no cut happened during the run")
        return
    print(f"resume after a cut: p50 {1000 * statistics.median(gaps):.1f} ms"
          f"  p90 {1000 * pct(gaps, 0.9):.1f} ms  ({len(gaps)} cuts, lines {len(arrivals)}"
          f" of {lines}, exit {p.returncode})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

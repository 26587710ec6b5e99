"""Memory under floods of output: the server's peak RSS while runs print hundreds of MB.

    .venv/bin/python scripts/bench_memory.py [--mb 400] [--runs 4] [--wait-mb 300]
                                             [--lines 1000000]

A server (``runner serve --no-tls``, the bench jobs, ``max_output_bytes`` raised so that
the limit does not end the runs early) runs in a subprocess. Its peak RSS (``VmHWM`` of
/proc/PID/status, reset between parts through /proc/PID/clear_refs) is read after each:

``floods``   ``--runs`` scripts printing ``--mb`` MB each at once, started async.
``wait``     one script printing ``--wait-mb`` MB asked with ``Prefer: wait``, the whole
             answer read.
``no-await`` a Python job printing ``--lines`` 100-byte lines without ever awaiting.

The store grows by what the runs print (about 1.5 GB at the defaults), in a temporary
directory removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "scripts" / "bench_jobs"


def status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def post(url: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url + path, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3600) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_final(url: str, run_id: str) -> str:
    while True:
        with urllib.request.urlopen(f"{url}/_runs/{run_id}", timeout=60) as answer:
            state = json.loads(answer.read())["state"]
        if state not in ("queued", "running"):
            return str(state)
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--wait-mb", type=int, default=300)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        env.update(RUNNER_BUILTIN_JOBS="false", RUNNER_RATE_LIMIT="0",
                   RUNNER_LOG_LEVEL="warning", RUNNER_MAX_OUTPUT_BYTES=str(4 << 30))  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--no-tls", "--port", "0",
             "--state-dir", tmp, "--jobs", str(JOBS)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[-1]
            time.sleep(1)
            pid = server.pid
            print(f"idle: RSS {status(pid, 'VmRSS') / 1024:.0f} MiB")

            reset_peak(pid)
            ids = []
            for _ in range(args.runs):
                code, body = post(url, f"/sh/flood?mb={args.mb}", {"Prefer": "respond-async"})
                ids.append(json.loads(body)["id"])
            states = [wait_final(url, i) for i in ids]
            peak = status(pid, "VmHWM") / 1024
            print(f"floods ({args.runs} × {args.mb} MB, script): peak RSS {peak:.0f} MiB; "
                  f"states {sorted(set(states))}")  # fmt: skip

            reset_peak(pid)
            code, body = post(url, f"/sh/flood?mb={args.wait_mb}", {"Prefer": "wait"})
            print(f"wait ({args.wait_mb} MB answer, {len(body) / 1e6:.0f} MB read, {code}): "
                  f"peak RSS {status(pid, 'VmHWM') / 1024:.0f} MiB")  # fmt: skip

            before = status(pid, "VmRSS")
            reset_peak(pid)
            code, body = post(url, f"/py/flood?n={args.lines}", {"Prefer": "respond-async"})
            state = wait_final(url, json.loads(body)["id"])
            grew = (status(pid, "VmHWM") - before) / 1024
            print(f"no-await ({args.lines} lines of 100 B, Python): peak RSS +{grew:.0f} MiB "
                  f"over {before / 1024:.0f} MiB; {state}")  # fmt: skip
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A larger fuzzing pass over the HTTP surface (the test suite runs a small one).

Starts ``runner serve --no-tls`` on 127.0.0.1 with the fuzz jobs, loads its
``/_openapi.json`` and sends ``--examples`` generated requests per operation (schemathesis
strategies driven by hypothesis), then reports cases tried, 5xx answers and whether the
server process survived. Usage: ``.venv/bin/python scripts/fuzz.py [--examples 200]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import schemathesis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.web.test_fuzz import FUZZ_JOBS, fuzz  # noqa: E402 - after the path is set


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="cases per operation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-fuzz-") as tmp:
        env = {**os.environ, "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_LEVEL": "warning",
               "RUNNER_MAX_QUEUED": "10000", "RUNNER_DEFAULT_TIMEOUT": "5",
               "RUNNER_RATE_LIMIT": "0"}  # fmt: skip
        cmd = [sys.executable, "-m", "runner", "serve", "--port", "0", "--no-tls"]
        cmd += ["--state-dir", tmp, "--jobs", str(FUZZ_JOBS)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split()[-1]
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"{url}/_ready").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.1)
            schema = schemathesis.openapi.from_url(f"{url}/_openapi.json")
            schema.config.update(base_url=url)
            t0 = time.monotonic()
            try:
                counts = fuzz(schema, None, args.examples)
            except AssertionError as exc:
                print(f"5xx answers found:\n{exc}")
                return 1
            alive = proc.poll() is None
            print(
                f"cases tried: {counts['cases']}; 5xx answers: {counts['5xx']}; "
                f"server crashed: {'no' if alive else 'YES'}; "
                f"{time.monotonic() - t0:.0f} s ({args.examples} examples per operation)"
            )
            return 0 if alive else 1
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())

"""Sandbox fidelity figures (issue 12): how long real clients wait on emulated latency.

    .venv/bin/python scripts/bench_sandbox.py [--latency 2] [--runs 3]

1. The built-in ``vm/create`` through ``runner serve`` (a subprocess configured only by
   ``Sandbox.runner_env()``: no polling override), every long-running operation taking
   ``--latency`` seconds. Reported against the critical path of its operations: the longest
   chain of operations that ran one after another, from the sandbox's own records.
   Target: ≤ 1.2× the critical path.
2. ``az vm stop`` (real azure-cli from .venv-az, whole process) with the same latency on the
   power-off. Target: ≤ latency + 2 s.

Everything runs on loopback; az runs with the sandbox's guard environment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.sandbox import IDENTITY_ENV_VARS, Sandbox  # noqa: E402
from runner.sandbox.world import Operation  # noqa: E402
from tests.azcli.conftest import AZ, ensure_azure_cli  # noqa: E402


def critical_path(ops: list[Operation]) -> float:
    """Longest chain of operations where each started after the previous one finished."""
    ordered = sorted(ops, key=lambda o: o.started)
    longest: dict[str, float] = {}
    for op in ordered:
        before = [
            longest[p.id] for p in ordered if p.ready_at <= op.started + 0.05 and p.id in longest
        ]
        longest[op.id] = (op.ready_at - op.started) + max(before, default=0.0)
    return max(longest.values(), default=0.0)


def start_runner(sandbox: Sandbox, state: Path) -> tuple[subprocess.Popen[str], str]:
    environ = {k: v for k, v in os.environ.items() if k not in IDENTITY_ENV_VARS}
    environ.update(sandbox.runner_env("imds"))
    environ.update(RUNNER_LOG_FORMAT="json", RUNNER_RATE_LIMIT="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "serve", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environ,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("runner listening on "):
        proc.kill()
        raise SystemExit(f"runner did not start: {line}")
    return proc, line.split()[-1]


def bench_vm_create(latency: float, runs: int) -> list[tuple[float, float]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(Path(tmp) / "sandbox")
        with sandbox.in_thread():
            sandbox.controls.set_latency({"Microsoft.*": latency})
            proc, url = start_runner(sandbox, Path(tmp) / "runner")
            try:
                verify = str(Path(tmp) / "runner" / "tls" / "cert.pem")
                with httpx.Client(base_url=url, verify=verify, timeout=120) as client:
                    for i in range(runs):
                        before = set(sandbox.world.operations)
                        started = time.monotonic()
                        r = client.post(
                            "/vm/create",
                            params={"rg": f"bench{i}", "vmname": "vm1", "pw": "S3cret-Passw0rd!"},
                            headers={"Prefer": "wait"},
                        )
                        took = time.monotonic() - started
                        if r.status_code != 200:
                            raise SystemExit(f"vm/create failed: {r.status_code} {r.text}")
                        with sandbox.world.lock:
                            ops = [
                                op for k, op in sandbox.world.operations.items()
                                if k not in before
                            ]  # fmt: skip
                        out.append((took, critical_path(ops)))
            finally:
                proc.terminate()
                proc.wait(15)
                if proc.stdout is not None:
                    proc.stdout.close()
    return out


def bench_az_stop(latency: float, runs: int) -> list[float]:
    ensure_azure_cli()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(Path(tmp) / "sandbox")
        with sandbox.in_thread():
            env = {"PATH": f"{AZ.parent}:/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8"}
            env.update(sandbox.az_env("imds"))

            def az(*args: str) -> float:
                started = time.monotonic()
                subprocess.run([str(AZ), *args, "-o", "none"], env=env, check=True,
                               capture_output=True, timeout=300)  # fmt: skip
                return time.monotonic() - started

            az("login", "--identity")
            az("group", "create", "-g", "rg", "-l", "westeurope")
            az("vm", "create", "-g", "rg", "-n", "vm1", "--image", "Ubuntu2204",
               "--admin-username", "azureuser", "--generate-ssh-keys")  # fmt: skip
            sandbox.controls.set_latency({"Microsoft.Compute/virtualMachines": latency})
            for _ in range(runs):
                out.append(az("vm", "stop", "-g", "rg", "-n", "vm1"))
                az("vm", "start", "-g", "rg", "-n", "vm1")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    creates = bench_vm_create(args.latency, args.runs)
    stops = bench_az_stop(args.latency, args.runs)
    worst_ratio = max(t / c for t, c in creates)
    result = {
        "latency_s": args.latency,
        "vm_create": {
            "wall_s": [round(t, 2) for t, _ in creates],
            "critical_path_s": [round(c, 2) for _, c in creates],
            "worst_ratio": round(worst_ratio, 3),
            "target": "<= 1.2",
        },
        "az_vm_stop": {
            "wall_s": [round(s, 2) for s in stops],
            "median_s": round(statistics.median(stops), 2),
            "target_s": args.latency + 2,
        },
    }
    print(json.dumps(result, indent=1))
    ok = worst_ratio <= 1.2 and max(stops) <= args.latency + 2
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

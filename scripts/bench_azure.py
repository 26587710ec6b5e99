"""Azure benchmark (issue 3): tokens per run, parallel vm/create, the runner's cost per ARM call.

Starts the sandbox in this process (a thread) and ``runner serve`` as a subprocess pointed
at it, then measures:

1. token requests to the sandbox per 100 ``vm/create`` runs (target: 1 — one credential
   per process, its cache shared by every run);
2. ``vm/create`` wall time with realistic sandbox latencies (2 s per network resource,
   10 s per VM) against the same resources created one after another by the same SDK
   (target ≤ 0.6×);
3. the runner's own CPU time per ARM call: CPU seconds of the server process during the
   100 runs divided by the HTTP calls the sandbox received from it (target < 1 ms).

Everything stays on 127.0.0.1; every loop is bounded. Usage:
    .venv/bin/python scripts/bench_azure.py [--runs 100] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from runner.sandbox import Sandbox
from runner.sandboxed import runner_env

ROOT = Path(__file__).resolve().parent.parent
PW = "Bench-Passw0rd-123!"
LATENCY = {"Microsoft.Network/*": 2.0, "Microsoft.Compute/virtualMachines": 10.0}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(state: Path, sandbox: Sandbox) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        **runner_env(sandbox),
        "RUNNER_LOG_LEVEL": "warning",
        "RUNNER_MAX_RUNNING": "64",
        "RUNNER_MAX_QUEUED": "1000",
        "RUNNER_SUBSCRIPTION_ID": sandbox.subscription_id,
        "RUNNER_LOCATION": sandbox.world.location,
        "RUNNER_ARM_POLLING_INTERVAL": "0.05",
    }
    cmd = [sys.executable, "-m", "runner", "serve", "--port", "0", "--no-tls"]
    cmd += ["--state-dir", str(state)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("runner listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    url = line.split()[-1]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server never became ready")


async def create_vms(url: str, n: int, concurrency: int, prefix: str) -> list[float]:
    """POST n vm/create runs (wait mode), ``concurrency`` at a time; their wall times."""
    sem = asyncio.Semaphore(concurrency)
    times: list[float] = []

    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def one(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(
                    "/vm/create",
                    params={"rg": f"{prefix}-rg{i % 8}", "vmname": f"{prefix}-vm{i}", "pw": PW},
                    headers={"Prefer": "wait"},
                )
                if r.status_code != 200:
                    raise SystemExit(f"vm/create failed ({r.status_code}):\n{r.text[-2000:]}")
                times.append(time.perf_counter() - t0)

        await asyncio.gather(*(one(i) for i in range(n)))
    return times


async def sequential_baseline(sandbox: Sandbox, name: str) -> float:
    """The same resources, one after another, with the same SDK and credential kind."""
    from azure.identity.aio import ManagedIdentityCredential
    from azure.mgmt.compute.aio import ComputeManagementClient
    from azure.mgmt.network.aio import NetworkManagementClient
    from azure.mgmt.resource.resources.aio import ResourceManagementClient

    os.environ.update(sandbox.env("imds"))
    common: dict[str, Any] = {
        "base_url": sandbox.arm_url,
        "credential_scopes": ["https://management.azure.com/.default"],
        "connection_verify": str(sandbox.ca_path),
        "polling_interval": 0.05,
    }
    sub, loc = sandbox.subscription_id, sandbox.world.location
    cred = ManagedIdentityCredential()
    res = ResourceManagementClient(cred, sub, **common)
    net = NetworkManagementClient(cred, sub, **common)
    cmp_ = ComputeManagementClient(cred, sub, **common)
    rg = f"{name}-rg"
    await cred.get_token("https://management.azure.com/.default")  # not timed
    t0 = time.perf_counter()
    await res.resource_groups.create_or_update(rg, {"location": loc})
    vnet = await (
        await net.virtual_networks.begin_create_or_update(
            rg,
            f"{name}-vnet",
            {
                "location": loc,
                "address_space": {"address_prefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": f"{name}-subnet", "address_prefix": "10.0.0.0/24"}],
            },
        )
    ).result()
    nsg = await (
        await net.network_security_groups.begin_create_or_update(
            rg, f"{name}-nsg", {"location": loc}
        )
    ).result()
    ip = await (
        await net.public_ip_addresses.begin_create_or_update(
            rg,
            f"{name}-ip",
            {
                "location": loc,
                "sku": {"name": "Standard"},
                "public_ip_allocation_method": "Static",
            },
        )
    ).result()
    nic = await (
        await net.network_interfaces.begin_create_or_update(
            rg,
            f"{name}-nic",
            {
                "location": loc,
                "network_security_group": {"id": nsg.id},
                "ip_configurations": [
                    {
                        "name": "ipconfig1",
                        "subnet": {"id": vnet.subnets[0].id},
                        "public_ip_address": {"id": ip.id},
                    }
                ],
            },
        )
    ).result()
    await (
        await cmp_.virtual_machines.begin_create_or_update(
            rg,
            name,
            {
                "location": loc,
                "hardware_profile": {"vm_size": "Standard_B2s"},
                "storage_profile": {
                    "image_reference": {
                        "publisher": "Canonical",
                        "offer": "0001-com-ubuntu-server-jammy",
                        "sku": "22_04-lts-gen2",
                        "version": "latest",
                    },
                    "os_disk": {"create_option": "FromImage", "name": f"{name}-osdisk"},
                },
                "os_profile": {
                    "computer_name": name,
                    "admin_username": "azureuser",
                    "admin_password": PW,
                },
                "network_profile": {"network_interfaces": [{"id": nic.id}]},
            },
        )
    ).result()
    took = time.perf_counter() - t0
    for client in (res, net, cmp_):
        await client.close()
    await cred.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="runner-bench-azure-") as tmp:
        sandbox = Sandbox(Path(tmp) / "sandbox")
        with sandbox.in_thread():
            proc, url = start_server(Path(tmp) / "state", sandbox)
            try:
                # Warm up: the first run pays for imports and the one token request.
                asyncio.run(create_vms(url, 1, 1, "warm"))
                sandbox.controls.reset_counters()
                cpu0 = cpu_seconds(proc.pid)
                t0 = time.perf_counter()
                times = asyncio.run(create_vms(url, args.runs, args.concurrency, "b"))
                wall = time.perf_counter() - t0
                cpu = cpu_seconds(proc.pid) - cpu0
                calls = sum(sandbox.controls.arm_calls.values())
                figures["token_requests_per_runs"] = {
                    "runs": args.runs,
                    "token_requests": sum(sandbox.controls.token_requests.values()),
                    "target": 1,
                }
                figures["runner_cpu_per_arm_call_ms"] = {
                    "value": round(1000 * cpu / calls, 3),
                    "arm_calls": calls,
                    "cpu_s": round(cpu, 3),
                    "target": "< 1",
                }
                figures["vm_create_zero_latency"] = {
                    "runs_per_s": round(args.runs / wall, 1),
                    "p50_s": round(sorted(times)[len(times) // 2], 3),
                }
                sandbox.controls.set_latency(LATENCY)
                parallel = asyncio.run(create_vms(url, 1, 1, "lat"))[0]
            finally:
                proc.terminate()
                proc.wait(30)
            sequential = asyncio.run(sequential_baseline(sandbox, "seq"))
            figures["vm_create_with_latency"] = {
                "latency": LATENCY,
                "runner_parallel_s": round(parallel, 2),
                "sequential_sdk_s": round(sequential, 2),
                "ratio": round(parallel / sequential, 3),
                "target": "<= 0.6",
            }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        t = figures["token_requests_per_runs"]
        c = figures["runner_cpu_per_arm_call_ms"]
        v = figures["vm_create_with_latency"]
        z = figures["vm_create_zero_latency"]
        print(f"token requests per {t['runs']} vm/create runs: {t['token_requests']} (target 1)")
        print(
            f"runner CPU per ARM call: {c['value']} ms "
            f"({c['cpu_s']} s over {c['arm_calls']} calls incl. polls; target < 1 ms)"
        )
        print(f"vm/create, no latency: {z['runs_per_s']} runs/s, p50 {z['p50_s']} s")
        print(
            f"vm/create with latency: {v['runner_parallel_s']} s vs sequential "
            f"{v['sequential_sdk_s']} s = {v['ratio']}x (target <= 0.6x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The seed's flow: a webhookd-style script doing `az login --identity` and `az vm create`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.sandbox import IDENTITY_ENV_VARS

from .conftest import AZ, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SCRIPT = ROOT / "examples" / "jobs" / "vm" / "create-az.sh"


def _json_tail(text: str) -> dict:
    """The JSON object az printed last (after the script's own progress lines)."""
    return json.loads(text[text.index("{") :])


def test_script_creates_the_vm_with_the_platform_environment(azure_cli, sandbox, tmp_path):
    """Run as a runner runs scripts (parameters as variables) with the sandbox's az env."""
    env = {
        "PATH": f"{AZ.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **sandbox.az_env("imds"),
        "vmname": "myvm",
        "rg": "myrg",
    }
    proc = subprocess.run(
        [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("signing in with the managed identity\n")
    vm = _json_tail(proc.stdout)
    assert vm["powerState"] == "VM running"
    assert vm["resourceGroup"] == "myrg"
    assert vm["id"].endswith(
        "/resourceGroups/myrg/providers/Microsoft.Compute/virtualMachines/myvm"
    )


@contextlib.contextmanager
def _runner_without_network(state: Path, home: Path) -> Iterator[tuple[str, Path, int]]:
    """`runner serve --sandbox` in a network namespace of its own with loopback only: the
    runner does not pass the sandbox's guard variables to scripts, so nothing it starts may
    be able to leave the machine (not even a DNS query)."""
    environ = {k: v for k, v in os.environ.items() if k not in IDENTITY_ENV_VARS}
    environ.update(
        PATH=f"{AZ.parent}:{environ.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home),
        RUNNER_LOG_FORMAT="json",
        RUNNER_RATE_LIMIT="0",
    )
    command = [
        "unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
        sys.executable, "-m", "runner", "serve", "--port", "0", "--state-dir", str(state),
        "--sandbox", "--jobs", str(ROOT / "examples" / "jobs"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("runner listening on "), line + (
            proc.stderr.read() if proc.stderr else ""
        )
        yield line.split()[-1], state / "tls" / "cert.pem", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _curl(pid: int, *args: str) -> subprocess.CompletedProcess[str]:
    """curl run inside the runner's network namespace."""
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed to trigger the job as the seed does"
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", curl, "-sS", "-N", "--retry", "20",
         "--retry-connrefused", "--retry-delay", "1", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_curl_post_to_runner_serve_sandbox_streams_az_and_succeeds(azure_cli, tmp_path):
    """curl -X POST ".../vm/create-az?vmname=myvm&rg=myrg" against `runner serve --sandbox`."""
    state, home = tmp_path / "state", tmp_path / "home"
    home.mkdir()
    with _runner_without_network(state, home) as (url, cacert, pid):
        _curl(pid, "--cacert", str(cacert), f"{url}/_ready")
        proc = _curl(pid, "--cacert", str(cacert), "-X", "POST",
                     f"{url}/vm/create-az?vmname=myvm&rg=myrg")  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[0] == "signing in with the managed identity", proc.stdout + proc.stderr
    assert '"powerState": "VM running"' in proc.stdout, proc.stdout
    assert lines[-1].startswith("runner: run=") and " state=succeeded exit=0 " in lines[-1]

"""The CI recipes in deploy/ci: parsed as their CI reads them, their commands run for real.

Each recipe's deploy step is taken out of its YAML with the variables its CI would give
it (expressions of the CI's own syntax replaced by test values), and run by bash against
a runner on the sandbox, with a token as the recipe prescribes: a VM is created.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.auth.tokens import TokenStore
from tests.azure.test_vm_jobs import SSH_KEY
from tests.client.conftest import client_env
from tests.conftest import ROOT, wait_final

CI = ROOT / "deploy" / "ci"
BIN = str(Path(sys.executable).parent)


def _github(recipe: dict[str, Any], values: dict[str, str], tmp: Path) -> tuple[str, dict]:
    step = next(s for s in recipe["jobs"]["vm"]["steps"] if "runner call" in s.get("run", ""))

    def expand(text: str) -> str:
        return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m[1]], text)

    env = {k: expand(str(v)) for k, v in step["env"].items()} | {"RUNNER_TEMP": str(tmp)}
    return step["run"], env


def _azure(recipe: dict[str, Any], values: dict[str, str], tmp: Path) -> tuple[str, dict]:
    step = next(s for s in recipe["steps"] if "runner call" in s.get("script", ""))

    def expand(text: str) -> str:
        return re.sub(r"\$\(([\w.]+)\)", lambda m: values[m[1]], text)

    env = {k: expand(str(v)) for k, v in step["env"].items()} | {"AGENT_TEMPDIRECTORY": str(tmp)}
    return step["script"], env


def _gitlab(recipe: dict[str, Any], values: dict[str, str], tmp: Path) -> tuple[str, dict]:
    job = recipe["deploy-vm"]
    # GitLab passes variables to the shell, which expands them there.
    env = {k: values[k] for k in ("RUNNER_URL", "RUNNER_TOKEN", "SSH_PUBLIC_KEY",
                                  "CI_PIPELINE_ID", "CI_JOB_ID")}  # fmt: skip
    env["RUNNER_CACERT"] = values["RUNNER_CACERT_FILE"]
    script = "\n".join(f'export {k}="{v}"' for k, v in job["variables"].items())
    return script + "\n" + "\n".join(job["script"]), env


@pytest.mark.parametrize(
    ("name", "extract"),
    [("github-actions.yml", _github), ("azure-pipelines.yml", _azure), ("gitlab-ci.yml", _gitlab)],
)
def test_each_ci_recipe_creates_the_vm_with_a_token(azure_rig, tmp_path, name, extract):
    """The recipe's deploy step, run as its CI would run it: exit 0, a VM, run by the token."""
    rig = azure_rig()
    srv = rig.srv
    token = TokenStore(srv.state_dir / "tokens.json").create("ci", ["vm/*"])
    pem = srv.cacert.read_text()
    values = {
        "vars.RUNNER_URL": srv.url, "secrets.RUNNER_TOKEN": token, "vars.RUNNER_CACERT_PEM": pem,
        "vars.SSH_PUBLIC_KEY": SSH_KEY, "github.run_id": "7", "github.run_attempt": "1",
        "RUNNER_URL": srv.url, "RUNNER_TOKEN": token, "RUNNER_CACERT_PEM": pem,
        "SSH_PUBLIC_KEY": SSH_KEY, "Build.BuildId": "7", "System.JobAttempt": "1",
        "CI_PIPELINE_ID": "7", "CI_JOB_ID": "1", "RUNNER_CACERT_FILE": str(srv.cacert),
    }  # fmt: skip
    recipe = yaml.safe_load((CI / name).read_text())
    script, env = extract(recipe, values, tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    base["PATH"] = f"{BIN}:{base.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-eu", "-c", script], env=base | env, capture_output=True, text=True,
        cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created virtual machine web-1" in done.stdout
    run_id = re.search(r"runner: run=(\S+) job=vm/create", done.stderr)[1]  # type: ignore[index]
    with srv.client(headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get(f"/_runs/{run_id}").json()["caller"] == "token:ci"


def test_curl_recipe_follows_through_cuts_and_exits_with_the_runs_code(serve, proxy, tmp_path):
    """deploy/ci/curl.sh through a proxy that keeps cutting: each line once; a failed run
    exits with its code."""
    srv = serve()
    cutter = proxy(srv, cut_after=3000)
    env = client_env(srv, cutter.port)

    def curl(job: str, query: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(CI / "curl.sh"), job, query], env=env, capture_output=True, text=True,
            cwd=tmp_path, timeout=120, check=False,
        )  # fmt: skip

    ok = curl("py/lines", "n=240&every=20&pause=0.05")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"line {i}" for i in range(1, 241)]
    failed = curl("py/fail", "how=joberror")
    assert failed.returncode == 3, failed.stderr
    assert failed.stdout.splitlines() == ["about to fail"]
    refused = curl("py/echo", "rg=BAD")
    assert refused.returncode == 64 and "Invalid parameters" in refused.stderr
    run_id = re.search(r"run (\S+):", ok.stderr)[1]  # type: ignore[index]
    with srv.client() as c:
        assert wait_final(c, run_id)["state"] == "succeeded"

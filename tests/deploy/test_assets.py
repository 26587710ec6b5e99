"""The deploy assets, tested as far as this machine allows (no systemd, no Docker engine,
no Azure): the install script and the Dockerfile's commands run for real in a temp root
and the runner they installed serves; templates and manifests are parsed and checked
for what managed and workload identity need; every setting they give is a real one."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest
import yaml

from runner.settings import from_env, from_toml
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
pytestmark = pytest.mark.slow
# No index here: pip takes nothing from the network; the dependencies come from this
# environment through a path file (as in tests/test_package.py).
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_DEPS": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip


def _source(where: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in ("runner", "jobs"):
        shutil.copytree(ROOT / part, where / part, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, where / part)
    return where


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("wheel")
    src = _source(where / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(where / "dist"),
                    str(src)], env={**os.environ, **OFFLINE}, check=True, timeout=300)  # fmt: skip
    return next((where / "dist").glob("runner-*.whl"))


def _deps(venv: Path) -> None:
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def _serve_until_healthy(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("runner listening on "), line + proc.stderr.read()  # type: ignore[union-attr]
        url = line.split()[-1]
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(url + "/_health", timeout=2)
                if r.status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(15)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "PYTHON", "PIP_"))}
    return env | extra


def test_the_install_script_installs_into_a_root_and_the_installed_runner_serves(wheel, tmp_path):
    """install.sh ROOT=tmp: a venv under opt/, the unit, a commented runner.toml the
    runner accepts; the installed `runner serve --config` (paths moved into the root)
    answers /_health. The unit is hardened and starts what was installed."""
    root = tmp_path / "root"
    done = subprocess.run(
        ["sh", str(DEPLOY / "systemd" / "install.sh"), str(wheel)],
        env=_clean_env(ROOT=str(root), PYTHON=sys.executable, PIP_ARGS="--no-deps --no-index"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    venv = root / "opt" / "runner" / "venv"
    unit = (root / "etc" / "systemd" / "system" / "runner.service").read_text()
    toml = root / "etc" / "runner" / "runner.toml"
    assert (root / "etc" / "runner" / "jobs").is_dir()
    settings = from_toml(toml)  # every key a real setting
    assert settings["tls"] is False and settings["host"] == "127.0.0.1"
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.M)[1].split()  # type: ignore[index]
    assert exec_start[0] == "/opt/runner/venv/bin/runner" and (root / exec_start[0][1:]).exists()
    for directive in ("NoNewPrivileges=true", "ProtectSystem=strict", "StateDirectory=runner",
                      "User=runner", "PrivateTmp=true", "CapabilityBoundingSet="):  # fmt: skip
        assert re.search(rf"^{re.escape(directive)}$", unit, re.M), directive
    _deps(venv)
    env = _clean_env(RUNNER_STATE_DIR=str(tmp_path / "state"), RUNNER_PORT="0",
                     RUNNER_JOBS=str(root / "etc" / "runner" / "jobs"))  # fmt: skip
    cmd = [str(venv / "bin" / "runner"), *exec_start[1:-1], str(toml)]
    assert _serve_until_healthy(cmd, env, tmp_path).startswith("http://127.0.0.1:")


def _dockerfile() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (instruction, arguments)."""
    text = (DEPLOY / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.strip().partition(" ")
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, rest.strip()))
    return stages


def _env_of(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args))


def test_the_dockerfiles_commands_build_and_install_in_a_temp_root_and_it_serves(tmp_path):
    """Each stage's COPY, ENV and RUN, run as written with its paths moved into a temp
    root: the first builds the wheel, the second installs it in a venv; the image's
    ENTRYPOINT + CMD from that venv serve /_health. Non-root user, multi-stage."""
    build, final = _dockerfile()
    assert any(w == "FROM" and " AS build" in a for w, a in build)
    user = next(a for w, a in final if w == "USER")
    assert not user.startswith(("0", "root")), user
    roots = {"/src": tmp_path / "src", "/dist": tmp_path / "dist",
             "/opt/runner": tmp_path / "opt" / "runner",
             "/var/lib/runner": tmp_path / "var" / "lib" / "runner"}  # fmt: skip

    def moved(value: str) -> str:
        for inside, outside in roots.items():
            value = value.replace(inside, str(outside))
        return value

    bin_dir = Path(sys.executable).parent
    for stage in (build, final):
        env = _clean_env(**OFFLINE, PATH=f"{bin_dir}:{os.environ['PATH']}")
        for word, args in stage:
            if word == "ENV":
                env.update({k: moved(v) for k, v in _env_of(args).items()})
            elif word == "COPY" and "--from" not in args:
                for part in shlex.split(args)[:-1]:
                    src = ROOT / part
                    dest = roots["/src"] / part
                    if src.is_dir():
                        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
                    else:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(src, dest)
            elif word == "RUN":
                assert not re.search(r"(?<![\w$\"])/(src|dist|opt|var)\b", args), (
                    f"a path that is no variable: {args}"
                )
                done = subprocess.run(["sh", "-c", args], env=env, capture_output=True,
                                      text=True, timeout=300, check=False)  # fmt: skip
                assert done.returncode == 0, args + done.stdout + done.stderr
        if stage is final:
            final_env = env
    venv = roots["/opt/runner"]
    _deps(venv)
    entry = json.loads(next(a for w, a in final if w == "ENTRYPOINT"))
    cmd = json.loads(next(a for w, a in final if w == "CMD"))
    assert final_env["RUNNER_STATE_DIR"] == str(roots["/var/lib/runner"])
    # Not 0.0.0.0 in a test (the network stays on loopback); the image binds all addresses.
    run_env = final_env | {"RUNNER_HOST": "127.0.0.1", "RUNNER_PORT": "0",
                           "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}  # fmt: skip
    url = _serve_until_healthy([str(venv / "bin" / entry[0]), *entry[1:], *cmd], run_env, tmp_path)
    assert url.startswith("http://")


def test_the_kubernetes_manifest_has_what_aks_workload_identity_needs():
    """ServiceAccount annotated with a client id, pod labelled to use it, identity =
    workload, probes on /_health and /_ready, a PVC for the SQLite store, non-root."""
    docs = {
        d["kind"]: d
        for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "runner.yaml").read_text())
    }
    sa = docs["ServiceAccount"]
    assert re.fullmatch(
        r"[0-9a-f-]{36}", sa["metadata"]["annotations"]["azure.workload.identity/client-id"]
    )
    pod = docs["Deployment"]["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/_ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_health"
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
              if "persistentVolumeClaim" in v]  # fmt: skip
    assert claims == [docs["PersistentVolumeClaim"]["metadata"]["name"]]
    toml = docs["ConfigMap"]["data"]["runner.toml"]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"k8s-{os.getpid()}.toml"
    path.write_text(toml)
    try:
        settings = from_toml(path)
    finally:
        path.unlink()
    assert settings["identity"] == "workload" and str(settings["state_dir"]) == "/var/lib/runner"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert (
        "/var/lib/runner" in mounts and container["ports"][0]["containerPort"] == settings["port"]
    )


def _resources(template: dict) -> dict[str, dict]:
    return {r["type"]: r for r in template["resources"]}


def test_the_vm_template_gives_the_vm_an_identity_its_role_and_the_tested_cloud_init():
    """azuredeploy.json: a VM with a system-assigned identity, a role assignment to that
    identity on the resource group, ports 443/80 open for Caddy and ACME; its cloud-init is
    deploy/azure/vm/cloud-init.yaml, which runs the tested install script and Caddyfile."""
    template = json.loads((DEPLOY / "azure" / "vm" / "azuredeploy.json").read_text())
    cloud = (DEPLOY / "azure" / "vm" / "cloud-init.yaml").read_text()
    assert template["variables"]["cloudInit"] == cloud
    res = _resources(template)
    vm = res["Microsoft.Compute/virtualMachines"]
    assert vm["identity"]["type"] == "SystemAssigned"
    assert "variables('customData')" in vm["properties"]["osProfile"]["customData"]
    role = res["Microsoft.Authorization/roleAssignments"]["properties"]
    assert (
        "virtualMachines" in role["principalId"] and ".identity.principalId" in role["principalId"]
    )
    rules = res["Microsoft.Network/networkSecurityGroups"]["properties"]["securityRules"]
    ports = {r["properties"]["destinationPortRange"] for r in rules}
    assert {"443", "80"} <= ports
    config = yaml.safe_load(cloud)
    assert cloud.startswith("#cloud-config\n") and "caddy" in config["packages"]
    steps = "\n".join(config["runcmd"])
    assert "deploy/systemd/install.sh" in steps and "deploy/caddy/Caddyfile" in steps
    for placeholder in ("__RELEASE_URL__", "__DOMAIN__"):
        assert placeholder in cloud and placeholder in template["variables"]["customData"]
    used = set(re.findall(r"parameters\('(\w+)'\)", json.dumps(template)))
    assert used <= set(template["parameters"]), used - set(template["parameters"])


def test_the_container_apps_template_uses_managed_identity_probes_and_real_settings():
    """containerapp.json: system-assigned identity, ingress to the runner's port, probes on
    /_health and /_ready, and only RUNNER_* variables the runner knows."""
    template = json.loads((DEPLOY / "azure" / "containerapps" / "containerapp.json").read_text())
    app = _resources(template)["Microsoft.App/containerApps"]
    assert app["identity"]["type"] == "SystemAssigned"
    container = app["properties"]["template"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    settings = from_env(env)  # raises on an unknown RUNNER_ variable
    assert settings["identity"] == "managed" and settings["tls"] is False
    assert app["properties"]["configuration"]["ingress"]["targetPort"] == settings["port"]
    probes = {p["type"]: p["httpGet"]["path"] for p in container["probes"]}
    assert probes == {"Liveness": "/_health", "Readiness": "/_ready"}


def test_the_replicas_template_shares_one_postgresql_with_an_entra_login():
    """deploy/azure/replicas: at least two Container Apps replicas, one user-assigned
    identity that is both the app's and the database's Entra administrator, password
    logins off on the server, and the runner pointed at it with store_auth = "azure"
    (every RUNNER_* a real setting)."""
    template = json.loads((DEPLOY / "azure" / "replicas" / "azuredeploy.json").read_text())
    res = _resources(template)
    app = res["Microsoft.App/containerApps"]
    identity = (
        "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', "
        "variables('identityName'))]"
    )
    assert app["identity"]["type"] == "UserAssigned"
    assert list(app["identity"]["userAssignedIdentities"]) == [identity]
    server = res["Microsoft.DBforPostgreSQL/flexibleServers"]["properties"]
    assert server["authConfig"]["passwordAuth"] == "Disabled"
    assert server["authConfig"]["activeDirectoryAuth"] == "Enabled"
    admin = res["Microsoft.DBforPostgreSQL/flexibleServers/administrators"]["properties"]
    assert admin["principalType"] == "ServicePrincipal"
    assert admin["principalName"] == "[variables('identityName')]"
    scale = app["properties"]["template"]["scale"]
    assert scale["minReplicas"] == scale["maxReplicas"] == "[parameters('replicas')]"
    assert template["parameters"]["replicas"]["minValue"] == 2
    container = app["properties"]["template"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert "postgresql://{0}@{1}/{2}?sslmode=require" in env["RUNNER_STORE"]
    assert "identityName" in env["RUNNER_STORE"] and "clientId" in env["RUNNER_CLIENT_ID"]
    # ARM expressions stand for values known at deployment: checked as their shape.
    known = {"RUNNER_STORE": "postgresql://runner-id@server/runner?sslmode=require",
             "RUNNER_CLIENT_ID": "00000000-0000-0000-0000-000000000000"}  # fmt: skip
    settings = from_env({**env, **known})
    assert settings["store_auth"] == "azure" and settings["tls"] is False
    assert settings["heartbeat"] <= 30, "SSE heartbeats keep the ingress from idling out"
    assert not any("password" in e["name"].lower() for e in container["env"])

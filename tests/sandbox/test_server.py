"""Starting the sandbox, its admin endpoint, and ARM's refusal of bad tokens."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from runner.sandbox import Sandbox


def _client(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.arm_url, verify=ssl.create_default_context(cafile=str(sandbox.ca_path))
    )


def _imds_token(sandbox: Sandbox, resource: str = "https://management.azure.com") -> str:
    response = httpx.get(
        f"{sandbox.identity_url}/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": resource},
        headers={"Metadata": "true"},
    )
    return response.json()["access_token"]


def test_start_and_stop_in_the_current_event_loop(tmp_path):
    """The async API serves ARM over HTTPS on 127.0.0.1 and stops cleanly."""

    async def main():
        sandbox = Sandbox(tmp_path)
        await sandbox.start()
        try:
            assert sandbox.arm_url.startswith("https://127.0.0.1:")
            assert sandbox.identity_url.startswith("http://127.0.0.1:")
            verify = ssl.create_default_context(cafile=str(sandbox.ca_path))
            async with httpx.AsyncClient(verify=verify) as client:
                response = await client.get(f"{sandbox.arm_url}/_sandbox")
            return response.json()
        finally:
            await sandbox.stop()

    state = asyncio.run(main())
    assert {i["kind"] for i in state["identities"]} == {"system", "user", "workload"}
    assert (tmp_path / "ca.pem").exists() and (tmp_path / "server.key").exists()


def test_tls_files_are_reused_across_restarts(tmp_path):
    """A second sandbox on the same state directory keeps the CA and the signing key."""
    first = Sandbox(tmp_path)
    with first.in_thread():
        ca = first.ca_path.read_bytes()
        token = _imds_token(first)
    second = Sandbox(tmp_path)
    with second.in_thread(), _client(second) as client:
        assert second.ca_path.read_bytes() == ca
        response = client.get(
            "/subscriptions",
            params={"api-version": "2022-12-01"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    assert response.json()["value"][0]["subscriptionId"] == second.subscription_id


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AuthenticationFailed"),
        ({"Authorization": "Bearer a.b.c"}, "InvalidAuthenticationToken"),
    ],
)
def test_arm_refuses_missing_or_foreign_tokens(sandbox, headers, code):
    """ARM answers 401 with an ARM error body without a token this sandbox issued."""
    with _client(sandbox) as client:
        response = client.get(
            f"/subscriptions/{sandbox.subscription_id}/resourcegroups?api-version=2022-09-01",
            headers=headers,
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_arm_refuses_token_for_another_audience(sandbox):
    """A token for another resource is refused with InvalidAuthenticationTokenAudience."""
    token = _imds_token(sandbox, "https://vault.azure.net")
    with _client(sandbox) as client:
        response = client.get(
            "/subscriptions?api-version=2022-12-01", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"


def test_admin_endpoint_sets_latency_faults_roles_and_resets_counters(sandbox):
    """The JSON admin API drives the same controls as the Python API."""
    principal = sandbox.user_identity.principal_id
    with _client(sandbox) as client:
        client.put("/_sandbox/latency", json={"Microsoft.Compute/virtualMachines": 10})
        client.post(
            "/_sandbox/faults",
            json={"kind": "throttle", "operation": "Microsoft.Network/*", "times": 2},
        )
        client.request("DELETE", "/_sandbox/roles", json={"principal_id": principal})
        client.post(
            "/_sandbox/roles",
            json={
                "principal_id": principal,
                "role": "Reader",
                "scope": f"/subscriptions/{sandbox.subscription_id}",
            },
        )
        _imds_token(sandbox)
        client.post("/_sandbox/counters/reset")
        state = client.get("/_sandbox").json()
        bad = client.post("/_sandbox/faults", json={"kind": "nonsense", "operation": "x"})
    assert sandbox.controls.latency_for("Microsoft.Compute/virtualMachines/write") == 10
    assert sandbox.controls.latency_for("Microsoft.Network/virtualNetworks/write") == 0
    assert state["faults"] == [{"kind": "throttle", "operation": "Microsoft.Network/*", "times": 2}]
    assert [a["role"] for a in state["role_assignments"] if a["principal_id"] == principal] == [
        "Reader"
    ]
    assert state["token_requests"] == {}
    assert bad.status_code == 400


def test_arm_routes_are_case_insensitive_and_require_api_version(sandbox):
    """``resourcegroups`` and ``resourceGroups`` reach the same group; api-version is required."""
    token = _imds_token(sandbox)
    auth = {"Authorization": f"Bearer {token}"}
    sub = sandbox.subscription_id
    with _client(sandbox) as client:
        created = client.put(
            f"/subscriptions/{sub}/resourcegroups/Demo?api-version=2024-03-01",
            json={"location": "westeurope"},
            headers=auth,
        )
        head = client.head(
            f"/SUBSCRIPTIONS/{sub}/resourceGroups/demo?api-version=2024-11-01", headers=auth
        )
        missing = client.get(f"/subscriptions/{sub}/resourceGroups/Demo", headers=auth)
    assert created.status_code == 201
    assert created.json()["id"] == f"/subscriptions/{sub}/resourceGroups/Demo"
    assert head.status_code == 204
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"


def test_the_sandbox_clears_every_identity_variable_the_runner_passes_to_scripts():
    """The sandbox keeps its own list (it imports nothing of the runner): it must cover the
    runner's, or a variable left over from the host could steer azure-identity elsewhere."""
    from runner.azure.identity import IDENTITY_ENV
    from runner.sandbox import IDENTITY_ENV_VARS

    assert set(IDENTITY_ENV) <= set(IDENTITY_ENV_VARS)


def test_a_state_dir_keeps_its_ports_and_secrets_across_restarts(tmp_path):
    """Restarting on the same state directory serves the same URLs and identity secrets."""
    first = Sandbox(tmp_path)
    with first.in_thread():
        urls = (first.arm_url, first.identity_url)
        env = first.env("appservice") | first.env("msi")
    second = Sandbox(tmp_path)
    with second.in_thread():
        assert (second.arm_url, second.identity_url) == urls
        assert second.env("appservice") | second.env("msi") == env
        token = httpx.get(
            env["IDENTITY_ENDPOINT"],
            params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
            headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
        )
    assert token.status_code == 200


def test_az_env_file_has_the_exports_and_the_cloud_registration(sandbox, tmp_path):
    """The file to source sets az's config dir, CA, guard proxy and registers the cloud."""
    text = sandbox.az_env_file()
    assert f"export AZURE_CONFIG_DIR={sandbox.az_config_dir}" in text
    assert f"export REQUESTS_CA_BUNDLE={sandbox.ca_path}" in text
    assert "export HTTPS_PROXY=http://127.0.0.1:9" in text
    assert "export AZURE_CORE_COLLECT_TELEMETRY=false" in text
    assert (
        f"az cloud register --name RunnerSandbox --endpoint-resource-manager {sandbox.arm_url}/"
        in text
    )
    assert text.rstrip().endswith("az cloud set --name RunnerSandbox")
    # The sandbox's own profile is ready without running az at all.
    clouds = (sandbox.az_config_dir / "clouds.config").read_text()
    assert f"endpoint_resource_manager = {sandbox.arm_url}/" in clouds
    assert "name = RunnerSandbox" in (sandbox.az_config_dir / "config").read_text()


def test_main_writes_the_env_file(tmp_path):
    """`python -m runner.sandbox DIR --env-file F` writes what it prints for azure-cli."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env_file = tmp_path / "az.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.sandbox", str(tmp_path / "sb"), "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        out = ""
        while "Ctrl-C to stop" not in out and time.monotonic() < deadline:
            out += proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert "az cloud set --name RunnerSandbox" in out
    assert "az cloud register" in env_file.read_text()

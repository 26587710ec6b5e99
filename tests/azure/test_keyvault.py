"""Secrets by reference end to end: a runner server whose webhook secrets and job secret
defaults live in the sandbox's Key Vault, read with its managed identity by the real
azure-keyvault-secrets client over HTTPS on loopback.

Every test ends with the same check: no secret value in the state dirs, the logs or
anything the server answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from runner.errors import ConfigError
from runner.policy import JobPolicy
from runner.sandbox import IDENTITY_ENV_VARS, ImdsMode, Sandbox
from runner.server import prepare
from tests.azure.conftest import AzureRig
from tests.conftest import ROOT, TEST_JOBS, files_containing, make_settings

# GitHub's documented example ("Validating webhook deliveries"): secret, payload, signature.
DOCS_SECRET = "It's a Secret to Everybody"
DOCS_BODY = b"Hello, World!"
DOCS_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
ROTATED = "rotated-hook-secret-2Vx9"
DB_PASSWORD = "db-Passw0rd-from-kv-77"

LOGIN_JOB = '''"""Log in as a user; the password comes from Key Vault unless one is given."""

from runner import Context, Secret


async def run(
    ctx: Context,
    user: str = "admin",
    pw: Secret = "keyvault:https://runner-sandbox.vault.azure.net/secrets/db-password",
) -> None:
    value = pw.get_secret_value()
    ctx.print(f"user={user} pw={value} len={len(value)}")
'''

READ_JOB = '''"""Read a secret with ctx.azure().secrets(vault): the client shares the credential."""

from runner import Context


async def run(ctx: Context, name: str = "db-password") -> None:
    az = await ctx.azure()
    secret = await az.secrets("runner-sandbox").get_secret(name)
    ctx.print(f"{name}: {len(secret.value or '')} characters, version {secret.properties.version}")
'''


PEEK_JOB = '''"""Read a secret with ctx.secret(source), print it and fail quoting it: masked."""

from runner import Context, JobError


async def run(ctx: Context) -> None:
    pw = await ctx.secret("keyvault:https://runner-sandbox.vault.azure.net/secrets/db-password")
    ctx.print(f"pw={pw.get_secret_value()}")
    raise JobError(f"failing with {pw.get_secret_value()}")
'''


@pytest.fixture
def kv(azure_rig, sandbox: Sandbox, caplog, tmp_path) -> Iterator[Callable[..., AzureRig]]:
    """Factory: a runner whose sh/echo takes GitHub deliveries signed with the sandbox's
    Key Vault secret ``github-hook``; the secrets-nowhere check after the test."""
    sandbox.set_secret("github-hook", DOCS_SECRET)
    sandbox.set_secret("db-password", DB_PASSWORD)
    jobs = tmp_path / "kvjobs" / "kv"
    jobs.mkdir(parents=True)
    (jobs / "login.py").write_text(LOGIN_JOB)
    (jobs / "read.py").write_text(READ_JOB)
    (jobs / "peek.py").write_text(PEEK_JOB)
    rigs: list[AzureRig] = []
    answers: list[str] = []

    def start(**overrides) -> AzureRig:
        settings = {
            "jobs": (TEST_JOBS, jobs.parent),
            "keyvault_connect": sandbox.vault_address,
            "policies": (
                JobPolicy(
                    "sh/echo", verify="github", secrets=(sandbox.secret_reference("github-hook"),)
                ),
            ),  # fmt: skip
            **overrides,
        }
        rig = azure_rig("imds", **settings)
        rig.answers = answers  # type: ignore[attr-defined]
        rigs.append(rig)
        return rig

    with caplog.at_level("DEBUG"):
        yield start
    for rig in rigs:
        rig.srv.stop()
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for value in (DOCS_SECRET, ROTATED, DB_PASSWORD):
        assert value not in logged, "a secret reached the log"
        assert not any(value in a for a in answers), "a secret reached a response"
        for rig in rigs:
            assert files_containing(rig.srv.state_dir, value.encode()) == []


def deliver(rig: AzureRig, body: bytes, signature: str, delivery: str) -> httpx.Response:
    """A GitHub push delivery to sh/echo, answered when its run ended."""
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": "push",
        "Content-Type": "text/plain",
        "Prefer": "wait",
    }
    with rig.srv.client() as c:
        answer = c.post("/sh/echo", content=body, headers=headers)
    rig.answers.append(answer.text)  # type: ignore[attr-defined]
    return answer


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_githubs_test_vector_is_accepted_with_the_secret_in_key_vault(kv):
    """The published secret, payload and signature, the secret a keyvault: reference."""
    rig = kv()
    accepted = deliver(rig, DOCS_BODY, DOCS_SIGNATURE, "kv-1")
    assert accepted.status_code == 200, accepted.text
    assert "body=Hello, World!" in accepted.text
    forged = deliver(rig, DOCS_BODY, sign("not the secret", DOCS_BODY), "kv-2")
    assert forged.status_code == 403
    # Read once at start: a delivery never waits on Key Vault.
    calls = rig.sandbox.controls.vault_calls
    assert calls["Microsoft.KeyVault/vaults/secrets/getSecret/action"] == 1


def test_a_rotated_secret_is_used_after_the_cache_time_and_the_old_one_refused(kv):
    """A new version in Key Vault: deliveries signed with it are accepted within the
    refresh time, with no restart; then the old secret's signatures are refused."""
    rig = kv(secret_refresh=0.5)
    assert deliver(rig, DOCS_BODY, DOCS_SIGNATURE, "r-0").status_code == 200
    rig.sandbox.set_secret("github-hook", ROTATED)
    deadline = time.monotonic() + 15
    attempt = 0
    while deliver(rig, DOCS_BODY, sign(ROTATED, DOCS_BODY), f"r-new-{attempt}").status_code != 200:
        attempt += 1
        assert time.monotonic() < deadline, "the rotated secret was never accepted"
        time.sleep(0.1)
    old = deliver(rig, DOCS_BODY, DOCS_SIGNATURE, "r-old")
    assert old.status_code == 403
    assert "matches none of this job's secrets" in old.text


def test_a_rotation_list_accepts_the_pinned_old_version_too(kv, sandbox):
    """secret = [latest, pinned old version]: both signatures pass during a rotation."""
    old = next(iter(sandbox.vault.secrets["github-hook"].versions)).version
    sandbox.set_secret("github-hook", ROTATED)
    refs = (sandbox.secret_reference("github-hook"), sandbox.secret_reference("github-hook", old))
    rig = kv(policies=(JobPolicy("sh/echo", verify="github", secrets=refs),))
    assert deliver(rig, DOCS_BODY, DOCS_SIGNATURE, "l-old").status_code == 200
    assert deliver(rig, DOCS_BODY, sign(ROTATED, DOCS_BODY), "l-new").status_code == 200


def test_a_key_vault_outage_after_start_keeps_deliveries_working(kv, caplog):
    """Key Vault gone after start: deliveries still verify with the value read, the
    failure is logged and metered, and nothing asks Key Vault on a delivery's path."""
    rig = kv(secret_refresh=0.2, keyvault_retry_total=0)
    rig.sandbox.run_sync(rig.sandbox.set_vault_mode(ImdsMode.REFUSE))
    time.sleep(1.0)
    started = time.monotonic()
    accepted = deliver(rig, DOCS_BODY, DOCS_SIGNATURE, "o-1")
    took = time.monotonic() - started
    assert accepted.status_code == 200, accepted.text
    assert took < 5
    with rig.srv.client() as c:
        metrics = c.get("/_metrics").text
    assert 'runner_keyvault_reads_total{outcome="failed",vault="runner-sandbox"}' in metrics
    assert "runner_keyvault_stale_secrets 1.0" in metrics
    warned = [r.getMessage() for r in caplog.records if r.name == "runner.secrets"]
    assert any("stays in use" in m and "cannot reach Key Vault" in m for m in warned)
    rig.sandbox.run_sync(rig.sandbox.set_vault_mode(ImdsMode.UP))


def test_a_vault_that_denies_the_identity_stops_the_start_naming_role_and_scope(
    kv, sandbox, monkeypatch
):
    """No Key Vault Secrets User role: the start fails, saying which identity, which vault
    and secret, the role missing and the az line that grants it at the vault's scope."""
    sandbox.revoke(sandbox.system_identity.principal_id, "Key Vault Secrets User")
    for name in IDENTITY_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in sandbox.env("imds").items():
        monkeypatch.setenv(name, value)
    settings = make_settings(
        Path(sandbox.state_dir).parent / "denied",
        keyvault_connect=sandbox.vault_address,
        arm_endpoint=sandbox.arm_url,
        arm_ca=sandbox.ca_path,
        imds_endpoint=sandbox.identity_url,
        policies=(JobPolicy("sh/echo", verify="github",
                            secrets=(sandbox.secret_reference("github-hook"),)),),
    )  # fmt: skip
    prepared = prepare(settings)
    try:
        with pytest.raises(ConfigError) as refused:
            asyncio.run(prepared.runtime.start())
    finally:
        prepared.sock.close()
        prepared.runtime.resources.close()
    message = str(refused.value)
    assert message.startswith("cannot start: secret keyvault:https://runner-sandbox.vault")
    assert f"object id {sandbox.system_identity.principal_id}" in message
    assert 'Grant it the "Key Vault Secrets User" role' in message
    assert (
        f"az role assignment create --assignee-object-id {sandbox.system_identity.principal_id} "
        '--assignee-principal-type ServicePrincipal --role "Key Vault Secrets User" '
        f"--scope {sandbox.vault.scope()}"
    ) in message
    assert prepared.runtime.start_error is refused.value


def test_runner_serve_refused_by_the_vault_exits_saying_why(sandbox, tmp_path):
    """``runner serve`` whose webhook secret the vault denies: exit 2, the words on
    stderr, no banner, no traceback."""
    sandbox.set_secret("github-hook", DOCS_SECRET)
    sandbox.revoke(sandbox.system_identity.principal_id, "Key Vault Secrets User")
    config = tmp_path / "runner.toml"
    config.write_text(
        '[jobs."sh/echo"]\nverify = "github"\n'
        f'secret = "{sandbox.secret_reference("github-hook")}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in IDENTITY_ENV_VARS}
    env.update(sandbox.runner_env("imds"), RUNNER_LOG_FORMAT="json", RUNNER_BUILTIN_JOBS="false")
    done = subprocess.run(
        [sys.executable, "-m", "runner", "serve", "--config", str(config), "--port", "0",
         "--state-dir", str(tmp_path / "state"), "--jobs", str(TEST_JOBS)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "runner listening" not in done.stdout
    assert '--role "Key Vault Secrets User"' in done.stderr
    assert f"--scope {sandbox.vault.scope()}" in done.stderr
    assert "Traceback" not in done.stderr
    assert DOCS_SECRET not in done.stdout + done.stderr


def test_a_secret_default_from_key_vault_is_used_masked_and_never_stored(kv):
    """A job's Secret parameter defaulting to a keyvault: reference gets the value when
    the caller gives none (masked in its output, redacted in its record); a caller's own
    value still wins."""
    rig = kv()
    with rig.srv.client() as c:
        described = c.get("/kv/login").json()["parameters"]["properties"]["pw"]
        own = c.post("/kv/login?user=bob&pw=callers-own-pw", headers={"Prefer": "wait"})
        default = c.post("/kv/login?user=bob", headers={"Prefer": "wait"})
        record = c.get(f"/_runs/{default.headers['x-run-id']}").json()
        log = c.get(f"/_runs/{default.headers['x-run-id']}/log").text
    rig.answers.extend([own.text, default.text, log, str(record), str(described)])
    assert described.get("x-secret-default") == "keyvault"
    assert "runner-sandbox" not in str(described)
    assert default.status_code == 200, default.text
    assert f"user=bob pw=*** len={len(DB_PASSWORD)}" in default.text
    assert record["params"]["pw"] == "***"
    assert f"len={len('callers-own-pw')}" in own.text


def test_a_secret_default_that_cannot_be_read_refuses_the_start_with_503(kv, sandbox):
    """The default's secret missing from Key Vault: 503 problem, no run; the log says why."""
    rig = kv()
    with sandbox.world.lock:
        del sandbox.vault.secrets["db-password"]
    with rig.srv.client() as c:
        refused = c.post("/kv/login?user=bob")
    assert refused.status_code == 503
    assert "default of parameter pw cannot be read now" in refused.json()["detail"]
    assert "retry-after" in refused.headers


def test_a_job_reads_key_vault_with_ctx_azure_secrets(kv):
    """ctx.azure().secrets(vault): the SDK client on the runner's credential and CA."""
    rig = kv()
    with rig.srv.client() as c:
        answer = c.post("/kv/read", headers={"Prefer": "wait"})
    assert answer.status_code == 200, answer.text
    assert f"db-password: {len(DB_PASSWORD)} characters, version " in answer.text


def test_a_secret_a_job_reads_with_ctx_secret_is_masked_everywhere(kv):
    """ctx.secret("keyvault:…"): the value in the job's hands, *** in its output and in
    the failure it raised."""
    rig = kv()
    with rig.srv.client() as c:
        answer = c.post("/kv/peek", headers={"Prefer": "wait"})
        record = c.get(f"/_runs/{answer.headers['x-run-id']}").json()
    rig.answers.extend([answer.text, str(record)])
    assert "pw=***" in answer.text
    assert "failing with ***" in answer.text
    assert record["state"] == "failed"


def test_chat_and_notification_secrets_come_from_key_vault_too(kv, sandbox):
    """A Slack signing secret and the notification key by reference: a signed command is
    accepted, its result posted, its notice signed with the key from the vault."""
    import base64
    from urllib.parse import urlencode

    import standardwebhooks

    from tests.receiver import Receiver
    from tests.webhooks.signing import slack_headers

    slack_secret = "kv-slack-signing-9f8e7d6c5b4a"
    key = "whsec_" + base64.b64encode(b"n" * 32).decode()
    sandbox.set_secret("slack-signing", slack_secret)
    sandbox.set_secret("notify-key", key)
    with Receiver() as hooks:
        rig = kv(
            slack_signing_secret=sandbox.secret_reference("slack-signing"),
            slack_allow=("T1/*",),
            notify=(hooks.url + "/notify",),
            notify_secret=sandbox.secret_reference("notify-key"),
        )
        body = urlencode({"team_id": "T1", "user_id": "U1", "command": "/deploy",
                          "text": "py/echo rg=kv", "channel_id": "C1",
                          "response_url": hooks.url + "/slack"}).encode()  # fmt: skip
        with rig.srv.client() as c:
            signed = slack_headers(slack_secret.encode(), body, int(time.time()))
            answer = c.post("/_chat/slack", content=body, headers=signed)
            rig.answers.append(answer.text)  # type: ignore[attr-defined]
            assert answer.status_code == 200 and "started" in answer.json()["text"]
        assert hooks.delivered("/slack").json()["text"].startswith("✅ /py/echo succeeded")
        got = hooks.delivered("/notify")
        assert (
            standardwebhooks.Webhook(key).verify(got.body, got.headers)["data"]["job"] == "py/echo"
        )
    for value in (slack_secret, key):
        assert files_containing(rig.srv.state_dir, value.encode()) == []

"""Every identity source, through the runner and the real azure-identity, to the sandbox."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("kind", ["imds", "imds-user", "appservice", "arc", "workload"])
def test_whoami_reports_the_identity_of_each_kind(azure_rig, kind):
    """identity/whoami names the principal, client, tenant and subscription for each source."""
    rig = azure_rig(kind)
    sb = rig.sandbox
    expected = {
        "imds": sb.system_identity,
        "imds-user": sb.user_identity,
        "appservice": sb.system_identity,
        "arc": sb.system_identity,
        "workload": sb.workload_identity,
    }[kind]
    with rig.srv.client() as c:
        r = c.post("/identity/whoami?as_json=true")
    assert r.text.splitlines()[-1].startswith("runner: run="), r.text
    info = json.loads(r.text.splitlines()[0])
    assert info["principal_id"] == expected.principal_id
    assert info["client_id"] == expected.client_id
    assert info["tenant_id"] == sb.tenant_id
    assert info["subscription_id"] == sb.subscription_id
    assert info["token_expires_in_s"] > 3600
    assert info["endpoint_kind"] == {
        "imds": "imds", "imds-user": "imds", "appservice": "app service",
        "arc": "azure arc", "workload": "workload",
    }[kind]  # fmt: skip
    assert "access_token" not in r.text and "eyJ" not in r.text


def test_scripts_get_the_identity_endpoint_and_its_header_is_masked(azure_rig, sandbox):
    """A script job sees IDENTITY_ENDPOINT (for `az login --identity`); the header is masked."""
    rig = azure_rig("appservice")
    header = sandbox.env("appservice")["IDENTITY_HEADER"]
    with rig.srv.client() as c:
        r = c.post("/sh/env")
    env = dict(line.split("=", 1) for line in r.text.splitlines() if "=" in line)
    assert env["IDENTITY_ENDPOINT"].endswith("/msi/token")
    assert env["IDENTITY_HEADER"] == "***"
    assert header not in r.text

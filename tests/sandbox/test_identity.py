"""The managed-identity endpoints, driven by the real azure-identity credentials."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError
from azure.identity.aio import ManagedIdentityCredential, WorkloadIdentityCredential

from runner.sandbox import TOKEN_LIFETIME, ImdsMode, decode_unverified

from .conftest import ARM_SCOPE


async def _token(credential) -> dict:
    async with credential:
        token = await credential.get_token(ARM_SCOPE)
    return decode_unverified(token.token) | {"_expires_on": token.expires_on}


def test_imds_system_assigned_token_names_the_host_identity(sandbox, use_identity):
    """IMDS issues a long-lived token for the system-assigned identity."""
    use_identity("imds")
    claims = asyncio.run(_token(ManagedIdentityCredential()))
    identity = sandbox.system_identity
    assert claims["oid"] == identity.principal_id
    assert claims["appid"] == identity.client_id
    assert claims["tid"] == sandbox.tenant_id
    assert claims["xms_mirid"] == identity.resource_id
    assert claims["aud"] == "https://management.azure.com"
    assert claims["_expires_on"] >= time.time() + TOKEN_LIFETIME - 60
    assert sandbox.controls.tokens_issued == {"imds": 1}


def test_imds_user_assigned_token_selected_by_client_id(sandbox, use_identity):
    """A client id selects the user-assigned identity."""
    env = use_identity("imds-user")
    claims = asyncio.run(_token(ManagedIdentityCredential(client_id=env["AZURE_CLIENT_ID"])))
    assert claims["oid"] == sandbox.user_identity.principal_id
    assert claims["appid"] == sandbox.user_identity.client_id


def test_imds_user_assigned_token_selected_by_object_id(sandbox, use_identity):
    """An object id in identity_config selects the user-assigned identity."""
    use_identity("imds")
    credential = ManagedIdentityCredential(
        identity_config={"object_id": sandbox.user_identity.principal_id}
    )
    claims = asyncio.run(_token(credential))
    assert claims["oid"] == sandbox.user_identity.principal_id


def test_imds_unknown_client_id_is_unavailable(sandbox, use_identity):
    """An unknown user-assigned client id makes the credential unavailable."""
    use_identity("imds")
    credential = ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(CredentialUnavailableError, match="not been assigned"):
        asyncio.run(_token(credential))


def test_imds_requires_metadata_header(sandbox):
    """IMDS answers 400 when the Metadata header is missing."""
    url = f"{sandbox.identity_url}/metadata/identity/oauth2/token"
    params = {"api-version": "2018-02-01", "resource": "https://management.azure.com"}
    assert httpx.get(url, params=params).status_code == 400
    ok = httpx.get(url, params=params, headers={"Metadata": "true"})
    assert ok.status_code == 200
    assert set(ok.json()) >= {"access_token", "expires_in", "expires_on", "not_before"}
    assert isinstance(ok.json()["expires_in"], str)


def test_imds_instance_metadata_gives_subscription_and_location(sandbox):
    """Instance metadata names the subscription, location and host VM."""
    response = httpx.get(
        f"{sandbox.identity_url}/metadata/instance",
        params={"api-version": "2021-02-01"},
        headers={"Metadata": "true"},
    )
    compute = response.json()["compute"]
    assert compute["subscriptionId"] == sandbox.subscription_id
    assert compute["location"] == "westeurope"
    assert compute["resourceGroupName"] == "sandbox-host"
    assert compute["name"] == "sandbox-vm"
    assert compute["vmId"]


def test_app_service_token_requires_identity_header(sandbox, use_identity):
    """The App Service endpoint issues a token when X-IDENTITY-HEADER matches."""
    env = use_identity("appservice")
    claims = asyncio.run(_token(ManagedIdentityCredential()))
    assert claims["oid"] == sandbox.system_identity.principal_id
    assert sandbox.controls.tokens_issued == {"appservice": 1}
    bad = httpx.get(
        env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": "wrong"},
    )
    assert bad.status_code == 401


@pytest.mark.skipif(os.geteuid() != 0, reason="Arc key files live in /var/opt/azcmagent")
def test_arc_challenge_flow_issues_token_and_removes_key_file(sandbox, use_identity):
    """Arc answers 401 with a key file, accepts its contents, then deletes the file."""
    use_identity("arc")
    claims = asyncio.run(_token(ManagedIdentityCredential()))
    assert claims["oid"] == sandbox.system_identity.principal_id
    assert sandbox.controls.token_requests == {"arc": 2}
    assert sandbox.controls.tokens_issued == {"arc": 1}
    key_dir = Path("/var/opt/azcmagent/tokens")
    assert not any(p.name.startswith("sandbox-") for p in key_dir.glob("*.key"))


def test_workload_identity_token_over_https(sandbox, use_identity):
    """The Entra ID token endpoint exchanges the federated token for an ARM token."""
    use_identity("workload")
    credential = WorkloadIdentityCredential(connection_verify=str(sandbox.ca_path))
    claims = asyncio.run(_token(credential))
    assert claims["oid"] == sandbox.workload_identity.principal_id
    assert claims["azp"] == sandbox.workload_identity.client_id
    assert claims["aud"] == "https://management.azure.com"
    assert sandbox.controls.tokens_issued == {"workload": 1}


def test_imds_error_fails_credential_fast(sandbox, use_identity):
    """With IMDS answering 500 and retries off, the credential fails at once."""
    use_identity("imds")
    sandbox.controls.imds_mode = ImdsMode.ERROR
    started = time.monotonic()
    with pytest.raises(ClientAuthenticationError):
        asyncio.run(_token(ManagedIdentityCredential(retry_total=0)))
    assert time.monotonic() - started < 3


def test_imds_refused_fails_credential_fast(sandbox, use_identity):
    """With the IMDS port closed, the credential reports IMDS unavailable within seconds."""
    use_identity("imds")
    sandbox.run_sync(sandbox.set_imds_mode(ImdsMode.REFUSE))
    started = time.monotonic()
    with pytest.raises(CredentialUnavailableError):
        asyncio.run(_token(ManagedIdentityCredential(retry_total=0)))
    assert time.monotonic() - started < 3
    sandbox.run_sync(sandbox.set_imds_mode(ImdsMode.UP))
    claims = asyncio.run(_token(ManagedIdentityCredential()))
    assert claims["oid"] == sandbox.system_identity.principal_id


@pytest.mark.parametrize("kind", ["msi", "cloudshell"])
def test_msi_endpoint_kinds_issue_tokens(sandbox, use_identity, kind):
    """MSI_ENDPOINT with MSI_SECRET (Azure ML style) and without (Cloud Shell) both work."""
    use_identity(kind)
    claims = asyncio.run(_token(ManagedIdentityCredential()))
    assert claims["oid"] == sandbox.system_identity.principal_id
    assert sandbox.controls.tokens_issued == {kind: 1}


def test_app_service_errors_use_app_service_shape(sandbox):
    """An unknown identity on App Service answers {statusCode, message}, which msal shows."""
    env = sandbox.env("appservice")
    response = httpx.get(
        env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com",
                "client_id": "00000000-0000-0000-0000-000000000000"},
        headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
    )  # fmt: skip
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400
    assert "No managed identity matches" in body["message"]


def test_msi_secret_is_checked(sandbox):
    """The MSI endpoint refuses a request without its secret header."""
    response = httpx.get(
        sandbox.env("msi")["MSI_ENDPOINT"],
        params={"api-version": "2017-09-01", "resource": "https://management.azure.com"},
    )
    assert response.status_code == 401

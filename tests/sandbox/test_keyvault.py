"""Key Vault's secrets data plane, driven by the unmodified azure-keyvault-secrets client.

Each client connects to the sandbox's Key Vault listener whatever the vault's name
resolves to (an aiohttp resolver, as the runner's ``keyvault_connect`` does), so vault
URLs keep their Azure form and the SDK's challenge checks run as against Azure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import ManagedIdentityCredential
from azure.keyvault.secrets._shared import http_challenge_cache
from azure.keyvault.secrets.aio import SecretClient

from runner.azure.keyvault import connect_address, resolver_to
from runner.sandbox import ImdsMode, Sandbox
from tests.conftest import ROOT

VALUE = "kv-sandbox-value-7Hq2"


@contextlib.asynccontextmanager
async def vault(
    sandbox: Sandbox, *, client_id: str | None = None, url: str | None = None
) -> AsyncIterator[SecretClient]:
    """A SecretClient of the sandbox's vault as the system (or a user-assigned) identity."""
    context = ssl.create_default_context(cafile=str(sandbox.ca_path))
    connector = aiohttp.TCPConnector(
        ssl=context, resolver=resolver_to(connect_address(sandbox.vault_address))
    )
    session = aiohttp.ClientSession(connector=connector, trust_env=False)
    credential = ManagedIdentityCredential(client_id=client_id)
    client = SecretClient(
        url or sandbox.vault_url,
        credential,
        transport=AioHttpTransport(session=session, session_owner=False),
        retry_total=0,
    )
    try:
        yield client
    finally:
        await client.close()
        await credential.close()
        await session.close()


def officer(sandbox: Sandbox) -> str:
    """Make the user-assigned identity a Key Vault Secrets Officer; its client id."""
    sandbox.grant(sandbox.user_identity.principal_id, "Key Vault Secrets Officer",
                  sandbox.vault.scope())  # fmt: skip
    return sandbox.user_identity.client_id


def test_the_first_request_is_challenged_then_the_token_is_reused(sandbox, use_identity):
    """One 401 challenge, then bearer tokens for vault.azure.net: three gets cost one
    challenge and one token."""
    use_identity("imds")
    # The SDK keeps challenges per vault host for the whole process: forget earlier tests'.
    http_challenge_cache.clear()
    sandbox.set_secret("hook", VALUE)

    async def main() -> list[str]:
        async with vault(sandbox) as client:
            return [(await client.get_secret("hook")).value or "" for _ in range(3)]

    assert asyncio.run(main()) == [VALUE] * 3
    calls = sandbox.controls.vault_calls
    assert calls["challenge"] == 1
    assert calls["Microsoft.KeyVault/vaults/secrets/getSecret/action"] == 3
    assert sandbox.controls.tokens_issued == {"imds": 1}


def test_the_challenge_names_the_tenant_and_key_vaults_resource(sandbox):
    """An unauthenticated request gets Key Vault's 401 and WWW-Authenticate challenge."""
    status, headers, body = _raw(sandbox, "GET /secrets/hook?api-version=7.5")
    assert status == 401
    assert headers["www-authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{sandbox.tenant_id}", '
        'resource="https://vault.azure.net"'
    )
    assert body["error"]["code"] == "Unauthorized"


def test_a_token_for_arm_is_refused_by_key_vault(sandbox):
    """An ARM token is not a Key Vault token: 401 naming the audience expected."""
    token, _, _ = sandbox.issuer.issue(
        object_id=sandbox.system_identity.principal_id,
        app_id=sandbox.system_identity.client_id,
        audience="https://management.azure.com",
    )
    status, _, body = _raw(
        sandbox, "GET /secrets/hook?api-version=7.5", f"Authorization: Bearer {token}"
    )
    assert status == 401
    assert "Invalid audience. Expected https://vault.azure.net" in body["error"]["message"]


def test_versions_list_and_pinned_reads(sandbox, use_identity):
    """Set makes a version; get reads the latest or a pinned one; lists show names and
    versions without values."""
    use_identity("imds")
    client_id = officer(sandbox)

    async def main() -> None:
        async with vault(sandbox, client_id=client_id) as client:
            first = await client.set_secret("db-password", "one", content_type="text/plain")
            second = await client.set_secret("db-password", "two", tags={"env": "demo"})
            await client.set_secret("other", "x")
            assert (await client.get_secret("db-password")).value == "two"
            pinned = await client.get_secret("db-password", first.properties.version)
            assert pinned.value == "one" and pinned.properties.content_type == "text/plain"
            names = [p.name async for p in client.list_properties_of_secrets()]
            assert names == ["db-password", "other"]
            versions = {
                p.version async for p in client.list_properties_of_secret_versions("db-password")
            }
            assert versions == {first.properties.version, second.properties.version}
            assert second.properties.tags == {"env": "demo"}
            version = second.properties.version
            assert second.id == f"{sandbox.vault_url}/secrets/db-password/{version}"

    asyncio.run(main())


def test_lists_page_through_next_links(sandbox, use_identity):
    """More secrets than a page: the SDK follows nextLink back to the same vault."""
    use_identity("imds")
    for i in range(30):
        sandbox.set_secret(f"s{i:02d}", "v")

    async def main() -> list[str]:
        async with vault(sandbox) as client:
            return [p.name or "" async for p in client.list_properties_of_secrets()]

    assert asyncio.run(main()) == [f"s{i:02d}" for i in range(30)]


def test_soft_delete_recover_and_purge(sandbox, use_identity):
    """Delete keeps the secret recoverable and its name taken; recover brings it back;
    purge frees the name."""
    use_identity("imds")
    client_id = officer(sandbox)

    async def main() -> None:
        async with vault(sandbox, client_id=client_id) as client:
            await client.set_secret("old", "v1")
            deleted = await client.delete_secret("old")
            assert deleted.recovery_id == f"{sandbox.vault_url}/deletedsecrets/old"
            assert deleted.scheduled_purge_date is not None
            with pytest.raises(ResourceNotFoundError):
                await client.get_secret("old")
            with pytest.raises(ResourceExistsError, match="deleted but recoverable"):
                await client.set_secret("old", "v2")
            assert [d.name async for d in client.list_deleted_secrets()] == ["old"]
            await client.recover_deleted_secret("old")
            assert (await client.get_secret("old")).value == "v1"
            await client.delete_secret("old")
            await client.purge_deleted_secret("old")
            assert [d.name async for d in client.list_deleted_secrets()] == []
            await client.set_secret("old", "v3")
            assert (await client.get_secret("old")).value == "v3"

    asyncio.run(main())


def test_secrets_user_reads_but_may_not_write(sandbox, use_identity):
    """Key Vault Secrets User (the sandbox's default grant) gets and lists; setting is a
    403 ForbiddenByRbac naming the caller, the data action and the secret's scope."""
    use_identity("imds")
    sandbox.set_secret("hook", VALUE)

    async def main() -> HttpResponseError:
        async with vault(sandbox) as client:
            assert (await client.get_secret("hook")).value == VALUE
            assert [p.name async for p in client.list_properties_of_secrets()] == ["hook"]
            with pytest.raises(HttpResponseError) as refused:
                await client.set_secret("hook", "mine now")
            return refused.value

    error = asyncio.run(main())
    assert error.status_code == 403
    message = error.message
    assert f"oid={sandbox.system_identity.principal_id}" in message
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'" in message
    assert f"Resource: '{sandbox.vault.scope('hook').lower()}'" in message
    assert '"ForbiddenByRbac"' in error.response.text()


def test_contributor_on_the_subscription_reads_no_secret(sandbox, use_identity):
    """Without a Key Vault data role, Owner-like control-plane roles do not reach values."""
    use_identity("imds")
    sandbox.set_secret("hook", VALUE)
    sandbox.revoke(sandbox.system_identity.principal_id, "Key Vault Secrets User")

    async def main() -> None:
        async with vault(sandbox) as client:
            with pytest.raises(HttpResponseError, match="not authorized") as refused:
                await client.get_secret("hook")
            assert VALUE not in refused.value.response.text()

    asyncio.run(main())


def test_a_grant_on_one_secret_covers_that_secret_only(sandbox, use_identity):
    """A role at a secret's scope reads that secret, not its neighbours."""
    use_identity("imds")
    sandbox.set_secret("mine", "a")
    sandbox.set_secret("theirs", "b")
    sandbox.revoke(sandbox.system_identity.principal_id, "Key Vault Secrets User")
    sandbox.grant(sandbox.system_identity.principal_id, "Key Vault Secrets User",
                  sandbox.vault.scope("mine"))  # fmt: skip

    async def main() -> None:
        async with vault(sandbox) as client:
            assert (await client.get_secret("mine")).value == "a"
            with pytest.raises(HttpResponseError, match="not authorized"):
                await client.get_secret("theirs")

    asyncio.run(main())


def test_a_disabled_secret_cannot_be_read(sandbox, use_identity):
    """Disabling a version (Officer) makes its get a 403 SecretDisabled."""
    use_identity("imds")
    client_id = officer(sandbox)

    async def main() -> None:
        async with vault(sandbox, client_id=client_id) as client:
            await client.set_secret("off", "v")
            await client.update_secret_properties("off", enabled=False)
            with pytest.raises(HttpResponseError, match="disabled secret"):
                await client.get_secret("off")

    asyncio.run(main())


def test_an_unknown_vault_and_an_outage_fail_as_the_sdk_would_see_them(sandbox, use_identity):
    """A vault the sandbox lacks answers 404 VaultNotFound; a closed listener is a
    connection error; an erroring one a 503."""
    use_identity("imds")

    async def get(url: str | None = None) -> None:
        async with vault(sandbox, url=url) as client:
            await client.get_secret("x")

    with pytest.raises(HttpResponseError, match="no Key Vault at host"):
        asyncio.run(get("https://elsewhere.vault.azure.net"))
    sandbox.run_sync(sandbox.set_vault_mode(ImdsMode.REFUSE))
    with pytest.raises(ServiceRequestError):
        asyncio.run(get())
    sandbox.run_sync(sandbox.set_vault_mode(ImdsMode.ERROR))
    with pytest.raises(HttpResponseError) as unavailable:
        asyncio.run(get())
    assert unavailable.value.status_code == 503
    sandbox.run_sync(sandbox.set_vault_mode(ImdsMode.UP))
    sandbox.set_secret("x", "back")
    asyncio.run(get())


def test_key_vault_roles_are_listed_with_their_data_actions(sandbox):
    """The role definitions ARM lists carry Key Vault's data actions (what az resolves
    "Key Vault Secrets User" from)."""
    from runner.sandbox.world import DATA_ACTIONS, ROLE_IDS

    assert ROLE_IDS["Key Vault Secrets User"] == "4633458b-17de-408a-b874-0445c86b69e6"
    assert DATA_ACTIONS["Key Vault Secrets Officer"] == ("Microsoft.KeyVault/vaults/secrets/*",)


def test_runner_sandbox_seeds_secrets_and_prints_references_not_values(tmp_path):
    """``runner sandbox --secret NAME=VALUE`` prints the reference to use, never the value."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "sandbox", "--state-dir", str(tmp_path),
         "--secret", f"github-hook={VALUE}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    text = "".join(lines) + out + err
    reference = "keyvault:https://runner-sandbox.vault.azure.net/secrets/github-hook"
    assert reference in text
    assert "RUNNER_KEYVAULT_CONNECT=127.0.0.1:" in text
    assert VALUE not in text


def _raw(sandbox: Sandbox, request_line: str, *headers: str) -> tuple[int, dict, dict]:
    """One HTTP/1.1 request to the vault listener, SNI and Host the vault's name."""
    host = "runner-sandbox.vault.azure.net"
    address = connect_address(sandbox.vault_address)
    context = ssl.create_default_context(cafile=str(sandbox.ca_path))
    lines = [request_line + " HTTP/1.1", f"Host: {host}", *headers, "Connection: close"]
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as s,
    ):
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    parsed = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), parsed, json.loads(body or b"{}")


def test_an_older_state_dirs_certificate_is_made_anew_to_name_the_vaults(tmp_path):
    """A server certificate that does not name *.vault.azure.net (made before Key Vault,
    or damaged) is replaced; one that does is kept."""
    from cryptography import x509

    from runner.sandbox.certs import VAULT_NAME, ensure_tls_files

    files = ensure_tls_files(tmp_path)
    first = files.cert.read_bytes()
    assert ensure_tls_files(tmp_path).cert.read_bytes() == first
    files.cert.write_text("not a certificate")
    again = ensure_tls_files(tmp_path).cert.read_bytes()
    names = x509.load_pem_x509_certificate(again).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert VAULT_NAME in names.value.get_values_for_type(x509.DNSName)

"""Key Vault's refusals turned into sentences a person can act on (as errors.py does for
ARM): which identity, which vault and secret, what is missing, and the command that fixes it.
"""

from __future__ import annotations

import re

from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.identity import CredentialUnavailableError

from runner.azure import errors
from runner.azure.identity import IdentitySource
from runner.secrets import VaultRef

READ_ROLE = "Key Vault Secrets User"
_CALLER = re.compile(r"oid=(?P<oid>[0-9a-fA-F-]{36})")
_ACTION = re.compile(r"Action: '(?P<action>[^']+)'")
_RESOURCE = re.compile(r"Resource: '(?P<resource>[^']+)'")
# Key Vault writes resource ids in lower case; ARM's casing reads better in a command.
_CASING = {
    "subscriptions": "subscriptions",
    "resourcegroups": "resourceGroups",
    "providers": "providers",
    "microsoft.keyvault": "Microsoft.KeyVault",
    "vaults": "vaults",
    "secrets": "secrets",
}


def explain_read(exc: BaseException, ref: VaultRef, source: IdentitySource) -> str:
    """Why reading ``ref`` failed, in words, with the fix when it is known."""
    if isinstance(exc, CredentialUnavailableError) or errors._raised_by_identity(exc):
        return errors.explain(exc, source) or errors._first_line(exc)
    if isinstance(exc, HttpResponseError):
        return _http(exc, ref, source)
    if isinstance(exc, ServiceRequestError):
        return (
            f"cannot reach Key Vault at {ref.host}: {errors._first_line(exc)} (is the vault "
            "name right, and can this host reach it: DNS, firewall, private endpoint?)"
        )
    if isinstance(exc, ValueError) and "challenge" in str(exc):
        # azure-keyvault-secrets refuses a challenge for a resource outside the vault's
        # domain: the URL may not be a vault at all (issue 14).
        return f"{ref.host} did not answer as a Key Vault: {errors._first_line(exc)}"
    return f"reading it failed: {type(exc).__name__}: {errors._first_line(exc)}"


def _http(exc: HttpResponseError, ref: VaultRef, source: IdentitySource) -> str:
    error = exc.error
    code = getattr(error, "code", None) or ""
    message = getattr(error, "message", None) or errors._first_line(exc)
    inner = _inner_code(exc)
    where = f"secret {ref.name} in Key Vault {ref.vault}"
    if exc.status_code == 403 and inner == "ForbiddenByRbac":
        return _missing_role(message, ref, source)
    if exc.status_code == 403 and inner == "AccessDenied":
        oid = _oid(message)
        return (
            f"{_who(source, oid)} may not read {where}: the vault uses access policies, and "
            'none gives it "get" on secrets. Add one:\n'
            f"  az keyvault set-policy --name {ref.vault} --object-id {oid or '<object id>'} "
            f"--secret-permissions get\n"
            f'(or move the vault to Azure RBAC and grant the "{READ_ROLE}" role)'
        )
    if exc.status_code == 403 and inner == "SecretDisabled":
        return f"{where} is disabled (enable it in Key Vault, or point to an enabled version)"
    if exc.status_code == 404:
        version = f" version {ref.version}" if ref.version else ""
        return (
            f"Key Vault {ref.vault} has no {where.split(' in ')[0]}{version}: create it, or "
            f"correct the reference ({message.split('. ')[0]})"
        )
    if exc.status_code == 401:
        return f"Key Vault {ref.host} refused the runner's token: {message}"
    return f"Key Vault answered {exc.status_code} {code}: {message}".replace("  ", " ")


def _missing_role(message: str, ref: VaultRef, source: IdentitySource) -> str:
    oid = _oid(message)
    action = m["action"] if (m := _ACTION.search(message)) else "…/secrets/getSecret/action"
    resource = m["resource"] if (m := _RESOURCE.search(message)) else ""
    scope = _vault_scope(resource, ref)
    return (
        f"{_who(source, oid)} may not read secret {ref.name} in Key Vault {ref.vault}: no "
        f"role of it allows {action} on {scope}.\n"
        f'Grant it the "{READ_ROLE}" role on the vault (or only on this secret: add '
        f"/secrets/{ref.name} to the scope):\n"
        f"  az role assignment create --assignee-object-id {oid or '<object id>'} "
        f'--assignee-principal-type ServicePrincipal --role "{READ_ROLE}" --scope {scope}'
    )


def _vault_scope(resource: str, ref: VaultRef) -> str:
    """The vault's resource id, in ARM's casing, from the id Key Vault named."""
    parts = resource.strip("/").split("/")
    if "vaults" not in parts:
        return f"<the resource id of vault {ref.vault}>"
    parts = parts[: parts.index("vaults") + 2]
    shown = [_CASING.get(p.lower(), p) for p in parts]
    shown[-1] = ref.vault
    return "/" + "/".join(shown)


def _who(source: IdentitySource, oid: str | None) -> str:
    client = f", client id {source.client_id}" if source.client_id else ""
    object_id = f", object id {oid}" if oid else ""
    return (
        f"the runner's identity ({source.kind}: {source.endpoint_kind} at "
        f"{source.endpoint}{client}{object_id})"
    )


def _oid(message: str) -> str | None:
    m = _CALLER.search(message)
    return m["oid"] if m else None


def _inner_code(exc: HttpResponseError) -> str | None:
    """Key Vault's ``innererror.code`` (ForbiddenByRbac, AccessDenied, SecretDisabled)."""
    inner = getattr(exc.error, "innererror", None) if exc.error is not None else None
    if isinstance(inner, dict):
        return str(inner.get("code") or "") or None
    text = exc.response.text() if exc.response is not None else ""
    found = re.search(r'"innererror":\s*\{\s*"code":\s*"(\w+)"', text)
    return found[1] if found else None

"""Azure failures turned into sentences a person can act on."""

from __future__ import annotations

import re

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
)
from azure.identity import CredentialUnavailableError

from runner.azure.identity import IdentitySource

_AUTHZ = re.compile(
    r"client '(?P<client>[^']*)' with object id '(?P<oid>[^']*)' does not have authorization "
    r"to perform action '(?P<action>[^']*)' over scope '(?P<scope>[^']*)'"
)

NO_IDENTITY = (
    "no Azure identity is available to the runner ({detail}).\n"
    "Options: run it on an Azure VM, App Service, Container Apps or an Arc server with a "
    'managed identity enabled (identity = "managed", client_id for a user-assigned one); '
    'on AKS use workload identity (identity = "workload"); on a laptop use '
    'identity = "default" after `az login`; or try it with `runner serve --sandbox`.'
)


def role_hint(oid: str, action: str, scope: str) -> str:
    """The `az` line that grants the narrowest built-in role covering ``action``."""
    role = "Contributor"
    if action.lower().endswith("/read"):
        role = "Reader"
    elif action.lower().startswith("microsoft.network/"):
        role = "Network Contributor"
    elif action.lower().startswith("microsoft.compute/virtualmachines"):
        role = "Virtual Machine Contributor"
    return (
        f"az role assignment create --assignee-object-id {oid} "
        f'--assignee-principal-type ServicePrincipal --role "{role}" --scope {scope}'
    )


def explain(exc: BaseException, source: IdentitySource) -> str | None:
    """A message for a known Azure failure, or None to let the traceback speak."""
    if isinstance(exc, CredentialUnavailableError):
        return NO_IDENTITY.format(detail=_first_line(exc))
    if _raised_by_identity(exc):
        # The token request itself failed (IMDS 5xx, a refused assertion…), not an ARM call.
        status = getattr(exc, "status_code", None)
        return (
            f"the managed identity endpoint ({source.endpoint_kind} at {source.endpoint}) did "
            f"not issue a token{f' (HTTP {status})' if status else ''}: {_first_line(exc)}\n"
            "It may be starting up or unavailable; if this host has no identity, "
            + NO_IDENTITY.split("\n", 1)[1]
        )
    if isinstance(exc, HttpResponseError):
        code = getattr(exc.error, "code", None) if exc.error is not None else None
        message = getattr(exc.error, "message", None) or _first_line(exc)
        if code == "AuthorizationFailed":
            m = _AUTHZ.search(message)
            if m:
                return (
                    f"the runner's identity (object id {m['oid']}, client {m['client']}) may not "
                    f"perform {m['action']} on {m['scope']}.\nGrant it a role, e.g.:\n  "
                    + role_hint(m["oid"], m["action"], m["scope"])
                )
            return f"Azure refused the call (AuthorizationFailed): {message}"
        if isinstance(exc, ClientAuthenticationError) and exc.status_code in (None, 400, 401):
            where = (
                "ARM" if exc.status_code == 401 else f"the identity endpoint ({source.endpoint})"
            )
            return f"{where} refused the runner's token: {message}"
        status = exc.status_code if exc.status_code is not None else "?"
        return f"Azure answered {status} {code or ''}: {message}".replace("  ", " ")
    if isinstance(exc, ServiceRequestError):
        return f"cannot reach Azure: {_first_line(exc)}"
    return None


def _raised_by_identity(exc: BaseException) -> bool:
    """True when the exception came out of azure-identity (a token request failed)."""
    tb = exc.__traceback__
    while tb is not None:
        if "/azure/identity/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Which credential, from settings; and a description of it that holds no secret."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.settings import AzureSettings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

# The variables azure-identity reads to find its endpoint; passed on to script jobs so that
# `az login --identity` in a script finds the same identity. The sandbox clears these (and
# a few more) before pointing azure-identity at itself.
IDENTITY_ENV = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)
# Those of them that are credentials: a script's output never shows them.
SECRET_ENV = ("IDENTITY_HEADER", "MSI_SECRET")


@dataclass(frozen=True)
class IdentitySource:
    """What kind of identity the runner acts as and where its tokens come from."""

    kind: str  # managed | workload | default
    endpoint_kind: str  # imds | app service | azure arc | cloud shell | workload | developer
    endpoint: str
    client_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "endpoint_kind": self.endpoint_kind,
            "endpoint": self.endpoint,
            "client_id": self.client_id,
        }


def source(settings: AzureSettings, environ: Mapping[str, str]) -> IdentitySource:
    """Mirror azure-identity's choice of endpoint (the table in AZURE.md), for display."""
    client_id = settings.client_id or environ.get("AZURE_CLIENT_ID")
    if settings.identity == "workload":
        host = environ.get("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com")
        return IdentitySource("workload", "workload", host, client_id)
    if settings.identity == "default":
        return IdentitySource("default", "developer", "DefaultAzureCredential chain", client_id)
    if environ.get("IDENTITY_ENDPOINT") and environ.get("IDENTITY_HEADER"):
        return IdentitySource("managed", "app service", environ["IDENTITY_ENDPOINT"], client_id)
    if environ.get("IDENTITY_ENDPOINT") and environ.get("IMDS_ENDPOINT"):
        return IdentitySource("managed", "azure arc", environ["IDENTITY_ENDPOINT"], client_id)
    if environ.get("MSI_ENDPOINT"):
        return IdentitySource("managed", "cloud shell", environ["MSI_ENDPOINT"], client_id)
    host = environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or settings.imds_endpoint
    return IdentitySource("managed", "imds", host.rstrip("/"), client_id)


def make_credential(settings: AzureSettings) -> AsyncTokenCredential:
    """The one credential of this process (its token cache is what makes it one)."""
    from azure.identity.aio import (
        DefaultAzureCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    kwargs: dict[str, Any] = {"retry_total": settings.identity_retry_total}
    if settings.arm_ca is not None:
        kwargs["connection_verify"] = str(settings.arm_ca)
    if settings.identity == "workload":
        if settings.client_id:
            kwargs["client_id"] = settings.client_id
        return WorkloadIdentityCredential(**kwargs)
    if settings.identity == "default":
        return DefaultAzureCredential(
            managed_identity_client_id=settings.client_id,
            exclude_interactive_browser_credential=True,
            **kwargs,
        )
    return ManagedIdentityCredential(client_id=settings.client_id, **kwargs)


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT access token, unverified: for display of ids only."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError):
        return {}
    return claims

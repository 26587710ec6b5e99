"""The managed-identity endpoints: IMDS, App Service, Azure Arc, and workload identity.

IMDS, App Service and Arc are served over plain HTTP on loopback, as the real ones are.
The workload-identity token endpoint imitates Entra ID and must be HTTPS (azure-identity
refuses an http authority), so ``workload_token`` is mounted on the ARM listener.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .controls import Controls, ImdsMode
from .tokens import TokenIssuer
from .world import Identity, World

__all__ = ["ArcKeys", "IdentityContext", "build_identity_app", "workload_token"]


@dataclass(frozen=True)
class IdentityContext:
    """What the identity endpoints share with the rest of the sandbox."""

    world: World
    controls: Controls
    issuer: TokenIssuer
    app_service_secret: str
    msi_secret: str
    federated_token: str
    workload: Identity
    arc_keys: ArcKeys

    def __repr__(self) -> str:
        return f"IdentityContext(workload={self.workload.client_id!r})"


class ArcKeys:
    """The challenge files of Azure Arc's flow, created on demand and removed after use.

    azure-identity only reads a key file from ``/var/opt/azcmagent/tokens`` (the agent's
    directory), so the sandbox writes there; it removes its own files and any directory it
    had to create, and nothing else.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._issued: dict[str, Path] = {}
        self._created_dirs: list[Path] = []

    def challenge(self) -> Path:
        """Write a new key file and return its path (the realm of the 401 challenge)."""
        if not self.directory.exists():
            missing = [p for p in (self.directory, *self.directory.parents) if not p.exists()]
            self.directory.mkdir(parents=True, mode=0o700)
            self._created_dirs.extend(missing)  # deepest first: the removal order
        path = self.directory / f"sandbox-{uuid.uuid4().hex}.key"
        secret = secrets.token_hex(32)
        path.write_text(secret, encoding="utf-8")
        path.chmod(0o600)
        self._issued[secret] = path
        return path

    def redeem(self, secret: str) -> bool:
        """Whether ``secret`` is the content of a key file we issued (consumed on use)."""
        path = self._issued.pop(secret, None)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True

    def cleanup(self) -> None:
        """Remove unredeemed key files and the directories this object created."""
        for path in self._issued.values():
            path.unlink(missing_ok=True)
        self._issued.clear()
        for directory in self._created_dirs:
            try:
                directory.rmdir()
            except OSError:
                break  # not empty: someone else uses it; leave it and its parents
        self._created_dirs.clear()


def _token_body(ctx: IdentityContext, identity: Identity, resource: str) -> dict[str, str]:
    """IMDS-style token response (numbers as strings, like the real one)."""
    token, not_before, expires_on = ctx.issuer.issue(
        object_id=identity.principal_id,
        app_id=identity.client_id,
        audience=resource,
        resource_id=identity.resource_id or None,
    )
    lifetime = str(expires_on - not_before)
    return {
        "access_token": token,
        "client_id": identity.client_id,
        "expires_in": lifetime,
        "expires_on": str(expires_on),
        "ext_expires_in": lifetime,
        "not_before": str(not_before),
        # Echo the resource exactly as asked: azure-identity caches the token under it.
        "resource": resource,
        "token_type": "Bearer",
    }


def _invalid(description: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_request", "error_description": description}, status_code=status
    )


def _select(ctx: IdentityContext, request: Request) -> Identity | None:
    """The managed identity named by the query (system-assigned when none is named)."""
    q = request.query_params
    keys = {
        # Azure ML's 2017 API spells it "clientid".
        "client_id": q.get("client_id") or q.get("clientid"),
        "principal_id": q.get("object_id") or q.get("principal_id"),
        "resource_id": q.get("msi_res_id") or q.get("mi_res_id"),
    }
    named = {k: v for k, v in keys.items() if v}
    managed = [i for i in ctx.world.identities if i.kind in ("system", "user")]
    if not named:
        return next((i for i in managed if i.kind == "system"), None)
    for identity in managed:
        if all(str(getattr(identity, k)).lower() == v.lower() for k, v in named.items()):
            return identity
    return None


def _app_service_error(status: int, message: str) -> JSONResponse:
    # App Service's own error shape, which msal shows as "<statusCode>, <message>".
    return JSONResponse({"statusCode": status, "message": message}, status_code=status)


def _token(
    ctx: IdentityContext, request: Request, kind: str, resource: str | None = None
) -> Response:
    resource = resource or request.query_params.get("resource")
    imds_shape = kind in ("imds", "arc")
    if not resource:
        ctx.controls.count_token_request(kind, issued=False)
        message = "Required query variable 'resource' is missing"
        return _invalid(message) if imds_shape else _app_service_error(400, message)
    identity = _select(ctx, request)
    if identity is None:
        ctx.controls.count_token_request(kind, issued=False)
        if imds_shape:
            return _invalid("Identity not found")
        return _app_service_error(
            400,
            "No managed identity matches the requested client_id/object_id/mi_res_id "
            f"{dict(request.query_params)}.",
        )
    ctx.controls.count_token_request(kind, issued=True)
    return JSONResponse(_token_body(ctx, identity, resource))


def build_identity_app(ctx: IdentityContext) -> ASGIApp:
    """The plain-HTTP identity listener's app."""

    async def imds_token(request: Request) -> Response:
        if request.headers.get("metadata", "").lower() != "true":
            ctx.controls.count_token_request("imds", issued=False)
            return _invalid("Required metadata header not specified")
        return _token(ctx, request, "imds")

    async def imds_instance(request: Request) -> Response:
        if request.headers.get("metadata", "").lower() != "true":
            return _invalid("Required metadata header not specified")
        return JSONResponse(_instance_metadata(ctx))

    async def app_service_token(request: Request) -> Response:
        if request.headers.get("x-identity-header") != ctx.app_service_secret:
            ctx.controls.count_token_request("appservice", issued=False)
            return JSONResponse({"statusCode": 401, "message": "Unauthorized"}, status_code=401)
        return _token(ctx, request, "appservice")

    async def msi_secret_token(request: Request) -> Response:
        if request.headers.get("secret") != ctx.msi_secret:
            ctx.controls.count_token_request("msi", issued=False)
            return _app_service_error(401, "Unauthorized: the secret header is missing or wrong")
        return _token(ctx, request, "msi")

    async def cloud_shell_token(request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        if request.headers.get("metadata", "").lower() != "true":
            ctx.controls.count_token_request("cloudshell", issued=False)
            return _invalid("Required metadata header not specified")
        return _token(ctx, request, "cloudshell", (form.get("resource") or [""])[0])

    async def arc_token(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            ctx.controls.count_token_request("arc", issued=False)
            try:
                path = ctx.arc_keys.challenge()
            except OSError as exc:
                return _invalid(f"sandbox cannot write the Arc key file: {exc}", status=500)
            return Response(status_code=401, headers={"WWW-Authenticate": f"Basic realm={path}"})
        if not ctx.arc_keys.redeem(auth.removeprefix("Basic ").strip()):
            ctx.controls.count_token_request("arc", issued=False)
            return _invalid("The key in the Authorization header is not valid.", status=401)
        return _token(ctx, request, "arc")

    app = Starlette(
        routes=[
            Route("/metadata/identity/oauth2/token", imds_token),
            Route("/metadata/instance", imds_instance),
            Route("/msi/token", app_service_token),
            Route("/msi/secret/token", msi_secret_token),
            Route("/msi/cloudshell/token", cloud_shell_token, methods=["POST"]),
            Route("/arc/metadata/identity/oauth2/token", arc_token),
        ]
    )
    return _ImdsModeMiddleware(app, ctx.controls)


def _instance_metadata(ctx: IdentityContext) -> dict[str, object]:
    world = ctx.world
    host = next(i for i in world.identities if i.kind == "system")
    parts = host.resource_id.split("/")
    return {
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "location": world.location,
            "name": parts[-1],
            "osType": "Linux",
            "resourceGroupName": parts[4],
            "resourceId": host.resource_id,
            "subscriptionId": world.subscription_id,
            "tenantId": world.tenant_id,
            "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, host.resource_id)),
            "vmSize": "Standard_B2s",
            "zone": "",
            "tags": "",
        },
        "network": {
            "interface": [
                {
                    "ipv4": {
                        "ipAddress": [{"privateIpAddress": "10.0.0.4", "publicIpAddress": ""}],
                        "subnet": [{"address": "10.0.0.0", "prefix": "24"}],
                    },
                    "macAddress": "000D3A000000",
                }
            ]
        },
    }


class _ImdsModeMiddleware:
    """Answer 500 to everything while the controls say the identity endpoints are failing."""

    def __init__(self, app: ASGIApp, controls: Controls) -> None:
        self.app = app
        self.controls = controls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.controls.imds_mode is ImdsMode.ERROR:
            path: str = scope["path"]
            kind = "arc" if path.startswith("/arc/") else "imds"
            if path.startswith("/msi/"):
                kind = {"/msi/secret/token": "msi", "/msi/cloudshell/token": "cloudshell"}.get(
                    path, "appservice"
                )
            self.controls.count_token_request(kind, issued=False)
            response = JSONResponse(
                {"error": "unknown_error", "error_description": "injected IMDS failure"},
                status_code=500,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _aad_error(error: str, code: int, description: str, status: int) -> JSONResponse:
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status_code=status,
    )


def workload_token(ctx: IdentityContext) -> Callable[[Request, str], Awaitable[Response]]:
    """Entra ID's ``POST /{tenant}/oauth2/v2.0/token`` for the client-assertion grant."""

    async def handler(request: Request, tenant: str) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if tenant.lower() != ctx.world.tenant_id.lower():
            ctx.controls.count_token_request("workload", issued=False)
            return _aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found.", 400)
        if form.get("client_id", "").lower() != ctx.workload.client_id.lower():
            ctx.controls.count_token_request("workload", issued=False)
            return _aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found.",
                400,
            )
        if form.get("client_assertion") != ctx.federated_token:
            ctx.controls.count_token_request("workload", issued=False)
            return _aad_error(
                "invalid_client", 700213, "No matching federated identity record found.", 401
            )
        scope = form.get("scope", "").split()[0] if form.get("scope") else ""
        audience = scope.removesuffix("/.default") or "https://management.azure.com"
        token, not_before, expires_on = ctx.issuer.issue(
            object_id=ctx.workload.principal_id, app_id=ctx.workload.client_id, audience=audience
        )
        ctx.controls.count_token_request("workload", issued=True)
        lifetime = expires_on - not_before
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }
        )

    return handler

"""Key Vault's secrets data plane, as the unmodified ``azure-keyvault-secrets`` uses it.

A pure ASGI app on a listener of its own (HTTPS, the sandbox's certificate, which also
names ``*.vault.azure.net``). The vault is the request's host, ``<name>.vault.azure.net``:
clients connect to this listener whatever the name resolves to (the runner's
``keyvault_connect``, curl's ``--connect-to``), so vault URLs keep their Azure form and the
SDK's check that a challenge's resource matches the vault's domain runs as in Azure.

For every request: the vault from the host; ``api-version``; the bearer token, or the
challenge (401 + ``WWW-Authenticate: Bearer authorization=…, resource=…``) that tells
the SDK which token to get; injected faults; the data action checked against the
caller's role assignments (RBAC: ``Key Vault Secrets User`` reads, ``Officer`` writes);
then the operation under the world lock.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .controls import Controls, FaultKind, ImdsMode
from .tokens import Claims, TokenError, TokenIssuer
from .vaults import Deleted, SecretVersion, Vault, VaultError, VaultSecret
from .world import World

__all__ = ["RESOURCE", "VaultApp"]

log = logging.getLogger(__name__)

RESOURCE = "https://vault.azure.net"
# Key Vault accepts its resource URI or its application id as a token's audience.
_AUDIENCES = (RESOURCE, "cfa8b339-82a2-471a-a3c9-0fc0be7a4093")
_HOST = re.compile(r"(?P<vault>[a-z0-9-]+)\.vault\.azure\.net(?::\d+)?", re.IGNORECASE)
_NS = "Microsoft.KeyVault/vaults/secrets/"
PAGE = 25


@dataclass(frozen=True)
class Op:
    """One operation of the data plane: how it is matched and what it needs."""

    method: str
    pattern: re.Pattern[str]
    action: str  # the RBAC data action, e.g. Microsoft.KeyVault/vaults/secrets/getSecret/action
    handler: Callable[[VaultApp, Call], tuple[int, Any]]
    per_secret: bool = True  # checked at the secret's scope (else the vault's)


@dataclass(frozen=True)
class Call:
    """A matched, authorized request."""

    vault: Vault
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    host: str
    now: int


class VaultApp:
    """ASGI app of the Key Vault listener."""

    def __init__(self, world: World, controls: Controls, issuer: TokenIssuer) -> None:
        self.world = world
        self.controls = controls
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        headers = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-keyvault-service-version": "1.9.0.0",
            "x-ms-keyvault-region": self.world.location,
        }
        try:
            status, body = await self._handle(request)
        except VaultError as error:
            status, body = error.status, error.body()
            if status == 401:
                headers["WWW-Authenticate"] = self.challenge()
        except Exception:  # a sandbox bug: still Key Vault's error shape, and logged
            log.exception("%s %s failed", request.method, request.url.path)
            status, body = 500, VaultError(500, "InternalError", "Internal error (sandbox).").body()
        content = b"" if body is None else json.dumps(body).encode()
        media = "application/json; charset=utf-8" if body is not None else None
        await Response(content, status, headers, media_type=media)(scope, receive, send)

    def challenge(self) -> str:
        """What Key Vault answers a request without a (valid) token with."""
        return (
            f'Bearer authorization="https://login.microsoftonline.com/{self.world.tenant_id}", '
            f'resource="{RESOURCE}"'
        )

    async def _handle(self, request: Request) -> tuple[int, Any]:
        if self.controls.vault_mode is ImdsMode.ERROR:
            raise VaultError(
                503, "ServiceUnavailable", "The service is unavailable (a sandbox outage)."
            )
        host = request.headers.get("host", "")
        vault = self._vault(host)
        path = re.sub("/{2,}", "/", request.url.path).rstrip("/") or "/"
        op, params = _match(request.method, path)
        if "api-version" not in request.query_params:
            raise VaultError(400, "BadParameter", "The 'api-version' query parameter is missing.")
        claims = self._authenticate(request)
        self.controls.count_vault_call(op.action)
        fault = self.controls.take_fault(op.action, (FaultKind.ERROR, FaultKind.THROTTLE))
        if fault is not None and fault.kind is FaultKind.THROTTLE:
            raise VaultError(
                429,
                "Throttled",
                "Request was not processed because too many requests were received "
                "(a fault injected by the sandbox).",
            )
        if fault is not None:
            raise VaultError(500, "InternalError", "Internal error (an injected fault).")
        name = params.get("name")
        scope = vault.scope(name if op.per_secret else None)
        if not self.world.may(claims.object_id, op.action, scope):
            raise _forbidden(claims, op.action, scope, vault, self.issuer.issuer)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise VaultError(400, "BadParameter", "The request body is not valid JSON.") from None
        call = Call(vault, params, dict(request.query_params), body, host, int(time.time()))
        with self.world.lock:
            return op.handler(self, call)

    def _vault(self, host: str) -> Vault:
        m = _HOST.fullmatch(host)
        vault = self.world.vaults.get(m["vault"].lower()) if m else None
        if vault is None:
            known = ", ".join(v.url for v in self.world.vaults.values()) or "none"
            # In Azure the name would not resolve; here it reached the listener anyway.
            raise VaultError(
                404,
                "VaultNotFound",
                f"The sandbox has no Key Vault at host '{host}' (its vaults: {known}).",
            )
        return vault

    def _authenticate(self, request: Request) -> Claims:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.controls.count_vault_call("challenge")
            raise VaultError(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
            )
        try:
            claims = self.issuer.verify(token.strip())
        except TokenError as error:
            raise VaultError(401, "Unauthorized", f"AKV10032: {error.message}") from None
        if claims.audience.rstrip("/").lower() not in _AUDIENCES:
            raise VaultError(
                401,
                "Unauthorized",
                f"AKV10022: Invalid audience. Expected {RESOURCE}, found: {claims.audience}.",
            )
        return claims

    # -- operations ---------------------------------------------------------------------
    def set_secret(self, call: Call) -> tuple[int, Any]:
        body = call.body if isinstance(call.body, dict) else {}
        value = body.get("value")
        if not isinstance(value, str):
            raise VaultError(400, "BadParameter", "Property value is required.")
        attrs = body.get("attributes") or {}
        secret, version = call.vault.set(
            call.params["name"],
            value,
            call.now,
            content_type=body.get("contentType"),
            tags=dict(body.get("tags") or {}),
            enabled=bool(attrs.get("enabled", True)),
            not_before=attrs.get("nbf"),
            expires=attrs.get("exp"),
        )
        return 200, _bundle(call.vault, secret, version, with_value=True)

    def get_secret(self, call: Call) -> tuple[int, Any]:
        secret = call.vault.find(call.params["name"])
        version = secret.version(call.params.get("version") or "")
        if version is None:
            raise VaultError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {secret.name}/{call.params['version']} was not found "
                "in this key vault.",
            )
        if not version.enabled:
            raise VaultError(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner="SecretDisabled",
            )
        return 200, _bundle(call.vault, secret, version, with_value=True)

    def update_secret(self, call: Call) -> tuple[int, Any]:
        secret = call.vault.find(call.params["name"])
        version = secret.version(call.params.get("version") or "")
        if version is None:
            raise VaultError(404, "SecretNotFound", f"Secret version not found: {secret.name}")
        body = call.body if isinstance(call.body, dict) else {}
        attrs = body.get("attributes") or {}
        if "enabled" in attrs and attrs["enabled"] is not None:
            version.enabled = bool(attrs["enabled"])
        if "nbf" in attrs:
            version.not_before = attrs["nbf"]
        if "exp" in attrs:
            version.expires = attrs["exp"]
        if body.get("contentType") is not None:
            version.content_type = body["contentType"]
        if body.get("tags") is not None:
            version.tags = dict(body["tags"])
        version.updated = call.now
        return 200, _bundle(call.vault, secret, version, with_value=False)

    def list_secrets(self, call: Call) -> tuple[int, Any]:
        items = [
            _item(call.vault, s, s.latest, versioned=False)
            for s in sorted(call.vault.secrets.values(), key=lambda s: s.name.lower())
        ]
        return 200, _page(items, call, "/secrets")

    def list_versions(self, call: Call) -> tuple[int, Any]:
        secret = call.vault.find(call.params["name"])
        items = [_item(call.vault, secret, v, versioned=True) for v in secret.versions]
        return 200, _page(items, call, f"/secrets/{secret.name}/versions")

    def delete_secret(self, call: Call) -> tuple[int, Any]:
        gone = call.vault.delete(call.params["name"], call.now)
        return 200, _deleted(call.vault, gone)

    def list_deleted(self, call: Call) -> tuple[int, Any]:
        items = [_deleted(call.vault, d) for d in call.vault.deleted.values()]
        return 200, _page(items, call, "/deletedsecrets")

    def get_deleted(self, call: Call) -> tuple[int, Any]:
        return 200, _deleted(call.vault, call.vault.find_deleted(call.params["name"]))

    def purge(self, call: Call) -> tuple[int, Any]:
        call.vault.purge(call.params["name"])
        return 204, None

    def recover(self, call: Call) -> tuple[int, Any]:
        secret = call.vault.recover(call.params["name"])
        return 200, _bundle(call.vault, secret, secret.latest, with_value=False)

    def not_served(self, call: Call) -> tuple[int, Any]:
        raise VaultError(501, "NotImplemented", "The sandbox does not serve backup and restore.")


_N = r"(?P<name>[^/]+)"
OPS = (
    Op("GET", re.compile(r"/secrets", re.I), _NS + "readMetadata/action",
       VaultApp.list_secrets, per_secret=False),
    Op("GET", re.compile(rf"/secrets/{_N}/versions", re.I), _NS + "readMetadata/action",
       VaultApp.list_versions),
    Op("GET", re.compile(rf"/secrets/{_N}(?:/(?P<version>[^/]*))?", re.I),
       _NS + "getSecret/action", VaultApp.get_secret),
    Op("PUT", re.compile(rf"/secrets/{_N}", re.I), _NS + "setSecret/action",
       VaultApp.set_secret),
    Op("PATCH", re.compile(rf"/secrets/{_N}(?:/(?P<version>[^/]*))?", re.I),
       _NS + "update/action", VaultApp.update_secret),
    Op("DELETE", re.compile(rf"/secrets/{_N}", re.I), _NS + "delete", VaultApp.delete_secret),
    Op("GET", re.compile(r"/deletedsecrets", re.I), _NS + "readMetadata/action",
       VaultApp.list_deleted, per_secret=False),
    Op("GET", re.compile(rf"/deletedsecrets/{_N}", re.I), _NS + "readMetadata/action",
       VaultApp.get_deleted),
    Op("DELETE", re.compile(rf"/deletedsecrets/{_N}", re.I), _NS + "purge/action",
       VaultApp.purge),
    Op("POST", re.compile(rf"/deletedsecrets/{_N}/recover", re.I), _NS + "recover/action",
       VaultApp.recover),
    Op("POST", re.compile(rf"/secrets/{_N}/backup", re.I), _NS + "backup/action",
       VaultApp.not_served),
    Op("POST", re.compile(r"/secrets/restore", re.I), _NS + "restore/action",
       VaultApp.not_served, per_secret=False),
)  # fmt: skip


def _match(method: str, path: str) -> tuple[Op, dict[str, str]]:
    path_known = False
    for op in OPS:
        m = op.pattern.fullmatch(path)
        if m is None:
            continue
        path_known = True
        if op.method == method:
            return op, {k: v for k, v in m.groupdict().items() if v is not None}
    if path_known:
        raise VaultError(405, "BadParameter", f"The method '{method}' is not allowed here.")
    raise VaultError(404, "NotFound", f"No Key Vault operation at '{path}'.")


def _forbidden(claims: Claims, action: str, scope: str, vault: Vault, issuer: str) -> VaultError:
    """Key Vault's RBAC refusal, as worded by Azure (resource ids in lower case)."""
    return VaultError(
        403,
        "Forbidden",
        "Caller is not authorized to perform action on resource.\r\n"
        "If role assignments, deny assignments or role definitions were changed recently, "
        "please observe propagation time.\r\n"
        f"Caller: appid={claims.app_id};oid={claims.object_id};iss={issuer}\r\n"
        f"Action: '{action}'\r\n"
        f"Resource: '{scope.lower()}'\r\n"
        "Assignment: (not found)\r\n"
        "DenyAssignmentId: null\r\n"
        "DecisionReason: null \r\n"
        f"Vault: {vault.name};location={vault.location}\r\n",
        inner="ForbiddenByRbac",
    )


def _bundle(
    vault: Vault, secret: VaultSecret, version: SecretVersion, *, with_value: bool
) -> dict[str, Any]:
    body = _item(vault, secret, version, versioned=True)
    if with_value:
        body["value"] = version.value
    return body


def _item(
    vault: Vault, secret: VaultSecret, version: SecretVersion, *, versioned: bool
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": vault.secret_id(secret.name, version.version if versioned else None),
        "attributes": version.attributes(),
        "tags": dict(version.tags),
    }
    if version.content_type is not None:
        item["contentType"] = version.content_type
    return item


def _deleted(vault: Vault, gone: Deleted) -> dict[str, Any]:
    body = _item(vault, gone.secret, gone.secret.latest, versioned=True)
    body.update(
        recoveryId=f"{vault.url}/deletedsecrets/{gone.secret.name}",
        deletedDate=gone.deleted_date,
        scheduledPurgeDate=gone.scheduled_purge_date,
    )
    return body


def _page(items: list[dict[str, Any]], call: Call, path: str) -> dict[str, Any]:
    """One page of a list, with ``nextLink`` (absolute, on the same host) if more follow."""
    try:
        size = max(1, min(PAGE, int(call.query.get("maxresults") or PAGE)))
        start = int(call.query.get("$skiptoken") or 0)
    except ValueError:
        raise VaultError(400, "BadParameter", "maxresults and $skiptoken are numbers.") from None
    page = items[start : start + size]
    next_link = None
    if start + size < len(items):
        query = {"api-version": call.query["api-version"], "$skiptoken": start + size,
                 "maxresults": size}  # fmt: skip
        next_link = f"https://{call.host}{path}?{urlencode(query)}"
    return {"value": page, "nextLink": next_link}

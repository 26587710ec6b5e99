"""A sliver of Microsoft Graph (``/graph/v1.0``): what ``az role assignment`` asks to turn
an assignee into an object id and to show principal names. The sandbox's directory holds
its managed identities and workload app, as service principals."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .tokens import TokenError, TokenIssuer
from .world import Identity, World

__all__ = ["handle_graph"]

_ANY = re.compile(r"servicePrincipalNames/any\(c:c eq '((?:[^']|'')*)'\)", re.I)


def _principal(identity: Identity) -> dict[str, Any]:
    names = [identity.client_id] + ([identity.resource_id] if identity.resource_id else [])
    return {
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": identity.principal_id,
        "appId": identity.client_id,
        "displayName": identity.name,
        "servicePrincipalNames": names,
        "servicePrincipalType": "Application" if identity.kind == "workload" else "ManagedIdentity",
    }


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(body, status, media_type="application/json")


def _json(body: Any) -> Response:
    return Response(json.dumps(body), 200, media_type="application/json")


async def handle_graph(request: Request, path: str, world: World, issuer: TokenIssuer) -> Response:
    """Serve one Graph request (bearer token of this sandbox, any Graph audience)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise TokenError("InvalidAuthenticationToken", "Access token is empty.")
        claims = issuer.verify(token.strip(), None)
    except TokenError as exc:
        return _error(401, "InvalidAuthenticationToken", exc.message)
    if "graph" not in claims.audience.lower():
        return _error(401, "InvalidAuthenticationToken", "Invalid audience.")
    route = path.removeprefix("/graph/v1.0").rstrip("/").lower()
    with world.lock:
        principals = [_principal(i) for i in world.identities]
    if request.method == "POST" and route == "/directoryobjects/getbyids":
        ids = {str(i).lower() for i in (json.loads(await request.body() or b"{}")).get("ids", [])}
        return _json({"value": [p for p in principals if p["id"].lower() in ids]})
    if request.method == "GET" and route == "/serviceprincipals":
        m = _ANY.search(request.query_params.get("$filter", ""))
        wanted = m.group(1).replace("''", "'").lower() if m else None
        found = [
            p
            for p in principals
            if wanted is None or wanted in (n.lower() for n in p["servicePrincipalNames"])
        ]
        return _json({"value": found})
    if request.method == "GET" and route in ("/users", "/groups"):
        return _json({"value": []})
    return _error(404, "Request_ResourceNotFound", f"Resource '{path}' does not exist.")

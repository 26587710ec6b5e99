"""The HTTPS listener: ARM, the workload-identity token endpoint, and ``/_sandbox/`` admin.

A pure ASGI app. For every ARM request: settle due operations, match a route, check the
bearer token, count the call, fire injected faults, check role assignments, then run the
handler under the world lock.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import (
    arm_authorization,
    arm_compute,
    arm_deployments,
    arm_discovery,
    arm_images,
    arm_network,
    arm_resources,
    arm_tags,
    azcli,
    catalog,
)
from .admin import AdminApi
from .arm_core import Call, Invoker, Reply, Route, poll_routes
from .controls import Controls, FaultKind
from .errors import ArmError, BadRequest, NotFound, Throttled, Unauthorized
from .graph_app import handle_graph
from .tokens import Claims, TokenError, TokenIssuer
from .world import World

__all__ = ["ArmApp"]

log = logging.getLogger(__name__)

_TOKEN_PATH = re.compile(r"/([^/]+)/oauth2/v2\.0/token/?", re.IGNORECASE)
# Audiences ARM accepts (with or without the trailing slash).
_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")


_INTERNAL = ArmError("InternalServerError", "Encountered internal server error (sandbox).")


def _all_routes() -> list[Route]:
    return (
        poll_routes()
        + arm_resources.routes()
        + arm_discovery.routes()
        + arm_network.routes()
        + arm_compute.routes()
        + arm_images.routes()
        + arm_deployments.routes()
        + arm_tags.routes()
        + arm_authorization.routes()
    )


class ArmApp:
    """ASGI app of the HTTPS listener."""

    def __init__(
        self,
        world: World,
        controls: Controls,
        issuer: TokenIssuer,
        workload_token: Callable[[Request, str], Awaitable[Response]],
        admin: AdminApi,
    ) -> None:
        self.world = world
        self.controls = controls
        self.issuer = issuer
        self.workload_token = workload_token
        self.admin = admin
        self.routes = _all_routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        # az builds some URLs with an empty segment ("Microsoft.Compute//virtualMachines",
        # "https://host//metadata/endpoints"); ARM ignores it.
        path: str = re.sub("/{2,}", "/", scope["path"])
        if path.startswith("/_sandbox"):
            response = await self.admin.handle(request)
        elif path.lower().startswith("/graph/"):
            response = await handle_graph(request, path, self.world, self.issuer)
        elif path.lower().startswith("/metadata/"):
            response = self._metadata(request, path.lower().rstrip("/"))
        elif (m := _TOKEN_PATH.fullmatch(path)) and request.method == "POST":
            response = await self.workload_token(request, m.group(1))
        else:
            response = await self._arm(request)
        await response(scope, receive, send)

    @staticmethod
    def _metadata(request: Request, path: str) -> Response:
        """The public documents: cloud endpoints and azure-cli's image aliases."""
        base = f"https://{request.headers.get('host', 'localhost')}"
        if path == "/metadata/endpoints":
            return Response(
                json.dumps(azcli.metadata(base)), media_type="application/json; charset=utf-8"
            )
        if path == "/metadata/vm-image-aliases.json":
            return Response(arm_images.alias_doc(), media_type="application/json")
        error = NotFound("NotFound", f"No metadata document at '{path}'.")
        return Response(json.dumps(error.body()), 404, media_type="application/json")

    async def _arm(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        headers = {
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": request.headers.get(
                "x-ms-client-request-id", request_id
            ),
        }
        try:
            reply = await self._dispatch(request)
        except ArmError as error:
            extra = {}
            if isinstance(error, Throttled):
                extra["Retry-After"] = str(error.retry_after)
            if isinstance(error, Unauthorized):
                extra["WWW-Authenticate"] = (
                    'Bearer authorization_uri="https://login.microsoftonline.com/'
                    f'{self.world.tenant_id}", error="invalid_token", '
                    f'error_description="{error.message}"'
                )
            reply = Reply(error.status, error.body(), extra)
        except Exception:  # a sandbox bug: still ARM's error shape, and logged
            log.exception("%s %s failed", request.method, request.url.path)
            reply = Reply(500, _INTERNAL.body())
        log.debug(
            "%s %s → %d (%.1f ms)",
            request.method,
            request.url.path,
            reply.status,
            (time.perf_counter() - started) * 1000,
        )
        body = (
            b""
            if reply.body is None or request.method == "HEAD"
            else json.dumps(reply.body).encode()
        )
        media = "application/json; charset=utf-8" if reply.body is not None else None
        return Response(body, reply.status, {**headers, **reply.headers}, media_type=media)

    async def _dispatch(self, request: Request) -> Reply:
        now = time.time()
        self.world.settle(now)
        path = re.sub("/{2,}", "/", request.url.path).rstrip("/") or "/"
        found, params = self._match(request.method, path)
        claims = self._authenticate(request, now)
        if "api-version" not in request.query_params:
            raise BadRequest(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if found.action != "poll":
            _check_api_version(found.action, request.query_params["api-version"])
        if "sub" in params and params["sub"].lower() not in self.world.subscriptions:
            raise NotFound(
                "SubscriptionNotFound", f"The subscription '{params['sub']}' could not be found."
            )
        self.controls.count_arm_call(found.action)
        if found.action != "poll":
            fault = self.controls.take_fault(found.action, (FaultKind.THROTTLE, FaultKind.ERROR))
            if fault is not None and fault.kind is FaultKind.THROTTLE:
                raise Throttled(
                    "TooManyRequests",
                    "The request is being throttled (a fault injected by the sandbox).",
                    retry_after=fault.retry_after,
                )
            if fault is not None:
                raise ArmError(
                    "InternalServerError",
                    "Encountered internal server error (a fault injected by the sandbox).",
                )
        if not found.public:
            self.world.authorize(claims, found.action, _canonical(self.world, found.scope(path)))
        body = await self._body(request)
        base_url = f"https://{request.headers.get('host', 'localhost')}"
        call = Call(
            method=request.method,
            path=path,
            params=params,
            query=dict(request.query_params),
            body=body,
            claims=claims,
            base_url=base_url,
            action=found.action,
            world=self.world,
            controls=self.controls,
            now=now,
            invoke=self._invoker(claims, base_url),
        )
        with self.world.lock:
            return found.handler(call)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` and ``path``, or ARM's 404/405."""
        path_matched = False
        for candidate in self.routes:
            m = candidate.regex.fullmatch(path)
            if m is None:
                continue
            path_matched = True
            if candidate.method == method:
                return candidate, m.groupdict()
        if path_matched:
            raise ArmError("MethodNotAllowed", f"The method '{method}' is not allowed.", status=405)
        raise NotFound(
            "InvalidResourceType", f"The resource type of '{path}' is not served by the sandbox."
        )

    def _invoker(self, claims: Claims, base_url: str) -> Invoker:
        """Nested requests as the same caller: a deployment creating its resources."""

        def invoke(method: str, target: str, body: Any, now: float) -> Reply:
            path, _, qs = target.partition("?")
            query = dict(parse_qsl(qs))
            try:
                found, params = self._match(method, path)
                _check_api_version(found.action, query.get("api-version", ""))
                self.controls.count_arm_call(found.action)
                if not found.public:
                    scope = _canonical(self.world, found.scope(path))
                    self.world.authorize(claims, found.action, scope)
                call = Call(
                    method=method,
                    path=path,
                    params=params,
                    query=query,
                    body=body,
                    claims=claims,
                    base_url=base_url,
                    action=found.action,
                    world=self.world,
                    controls=self.controls,
                    now=now,
                    invoke=invoke,
                )
                with self.world.lock:
                    return found.handler(call)
            except ArmError as error:
                return Reply(error.status, error.body())
            except Exception:  # a sandbox bug: fail this resource, not the whole request
                log.exception("nested %s %s failed", method, path)
                return Reply(500, _INTERNAL.body())

        return invoke

    def _authenticate(self, request: Request, now: float) -> Claims:
        header = request.headers.get("authorization", "")
        if not header:
            raise Unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is not of the Bearer type.",
            )
        try:
            claims = self.issuer.verify(token.strip(), now)
        except TokenError as error:
            raise Unauthorized(error.code, error.message) from None
        if claims.audience.rstrip("/").lower() not in _AUDIENCES:
            raise Unauthorized(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource "
                f"'{claims.audience}'. It should exactly match with one of the allowed "
                "audiences 'https://management.core.windows.net/','https://management.azure.com/'.",
            )
        return claims

    @staticmethod
    async def _body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequest(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            ) from None


def _check_api_version(action: str, version: str) -> None:
    """ARM's 400 for an api-version the resource provider does not offer."""
    supported = catalog.api_versions(action.split("/", 1)[0])
    if supported and version.lower() not in supported:
        raise BadRequest(
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{','.join(supported)}'. Please see https://aka.ms/arm-api-versions for more "
            "details.",
        )


def _canonical(world: World, scope: str) -> str:
    """Show a scope with ARM's casing for the parts the sandbox knows (``resourceGroups``)."""
    parts = scope.split("/")
    for i, part in enumerate(parts):
        if part.lower() == "resourcegroups":
            parts[i] = "resourceGroups"
            rg = world.get("/".join(parts[: i + 2])) if i + 1 < len(parts) else None
            if rg is not None:
                parts[i + 1] = rg.name
        elif part.lower() == "subscriptions" and i + 1 < len(parts):
            parts[i] = "subscriptions"
            parts[i + 1] = world.subscriptions.get(parts[i + 1].lower(), parts[i + 1])
        elif part.lower() == "providers" and i + 1 < len(parts):
            parts[i] = "providers"
    return "/".join(parts)

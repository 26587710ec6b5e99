"""Routing and long-running-operation plumbing shared by the ARM handlers.

A handler is a plain function ``Call -> Reply`` run under the world lock. Routes are
declared with ARM's canonical casing and matched case-insensitively, as ARM does
(the SDKs send both ``resourceGroups`` and ``resourcegroups``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .controls import Controls, FaultKind
from .errors import ArmError, BadRequest, NotFound
from .tokens import Claims
from .world import Operation, World

__all__ = [
    "Call",
    "Handler",
    "Invoker",
    "Reply",
    "Route",
    "accept",
    "body_object",
    "id_ref",
    "not_found",
    "operation_of",
    "poll_routes",
    "polling_headers",
    "route",
]


@dataclass(frozen=True)
class Call:
    """One authenticated ARM request, as a handler sees it."""

    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    claims: Claims
    base_url: str
    action: str
    world: World
    controls: Controls
    now: float = field(default_factory=time.time)
    invoke: Invoker | None = None

    @property
    def sub(self) -> str:
        """The subscription id of the path, in canonical casing."""
        return self.world.subscriptions.get(self.params["sub"].lower(), self.params["sub"])

    @property
    def api_version(self) -> str:
        """The api-version the client asked for (any is accepted)."""
        return self.query.get("api-version", "")


@dataclass(frozen=True)
class Reply:
    """What a handler answers: status, JSON body (None for no body) and headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Reply]
# Runs a nested ARM request (method, path with query, body, virtual time) as the caller of
# the current one: how a deployment creates its resources through the ordinary handlers.
Invoker = Callable[[str, str, Any, float], Reply]


@dataclass(frozen=True)
class Route:
    """A method and path pattern bound to an ARM action and a handler.

    ``scope_trim`` drops that many trailing path segments to get the authorization scope
    (collections and actions are authorized at their parent).
    """

    method: str
    regex: re.Pattern[str]
    action: str
    handler: Handler
    scope_trim: int = 0
    public: bool = False  # no role check (operation polls, listing one's subscriptions)

    def scope(self, path: str) -> str:
        """The scope that role assignments must cover for a request to ``path``."""
        segments = path.rstrip("/").split("/")
        if self.scope_trim:
            segments = segments[: -self.scope_trim]
        # ARM reports the scope of a provider collection without the "/providers/<ns>" tail.
        if len(segments) >= 2 and segments[-2].lower() == "providers":
            segments = segments[:-2]
        return "/".join(segments)


def route(
    method: str,
    pattern: str,
    action: str,
    handler: Handler,
    scope_trim: int = 0,
    *,
    public: bool = False,
) -> Route:
    """Compile ``pattern`` into a case-insensitive Route: ``{name}`` captures one segment,
    ``{name*}`` one or more (a scope such as a resource id)."""
    parts = re.split(r"(\{\w+\*?\})", pattern)
    regex = "".join(
        (f"(?P<{p[1:-2]}>/.+?)" if p.endswith("*}") else f"(?P<{p[1:-1]}>[^/]+)")
        if p.startswith("{")
        else re.escape(p)
        for p in parts
    )
    compiled = re.compile(regex + "/?", re.IGNORECASE)
    return Route(method, compiled, action, handler, scope_trim, public)


def body_object(call: Call) -> dict[str, Any]:
    """The request body as a JSON object without its nulls (ARM reads null as absent),
    or 400 InvalidRequestContent."""
    if not isinstance(call.body, dict):
        raise BadRequest("InvalidRequestContent", "The request content must be a JSON object.")
    cleaned: dict[str, Any] = _drop_nulls(call.body)
    return cleaned


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def id_ref(value: Any) -> str | None:
    """The ``id`` of a ``{"id": ...}`` sub-resource reference, if any."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def not_found(type_: str, name: str, rg: str) -> NotFound:
    """ARM's 404 for a missing top-level resource."""
    return NotFound(
        "ResourceNotFound",
        f"The Resource '{type_}/{name}' under resource group '{rg}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def accept(
    call: Call,
    *,
    status: int,
    body: Any,
    on_success: Callable[[], None],
    on_failure: Callable[[], None],
    location_header: bool = False,
) -> Reply:
    """Start a long-running operation and answer with its polling headers.

    Retry-After says, in whole seconds as ARM does, when the operation will be done: a
    client that honours it (azure-core does) polls once, right then; without it azure-core
    would wait its 30 s default between polls (issue 12, item 2).
    """
    fault = call.controls.take_fault(call.action, (FaultKind.PROVISION_FAILED,))
    op = call.world.start_operation(
        action=call.action,
        latency=call.controls.latency_for(call.action),
        fail=fault is not None,
        on_success=on_success,
        on_failure=on_failure,
        now=call.now,
    )
    return Reply(status, body, polling_headers(call, op, location=location_header))


def polling_headers(call: Call, op: Operation, *, location: bool = False) -> dict[str, str]:
    """Azure-AsyncOperation (and Location) URLs of ``op``, with Retry-After."""
    headers = {
        "Azure-AsyncOperation": _op_url(call, op, "operations"),
        "Retry-After": str(op.retry_after(call.now)),
    }
    if location:
        headers["Location"] = _op_url(call, op, "operationResults")
    return headers


def operation_of(reply: Reply, world: World) -> Operation | None:
    """The operation a reply's polling headers point at, if any."""
    url = reply.headers.get("Azure-AsyncOperation") or reply.headers.get("Location")
    if not url:
        return None
    return world.operations.get(url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def _op_url(call: Call, op: Operation, kind: str) -> str:
    return (
        f"{call.base_url}/subscriptions/{call.sub}/providers/{op.namespace}/locations/"
        f"{op.location}/{kind}/{op.id}?api-version={call.api_version}"
    )


def _operation(call: Call) -> Operation:
    op = call.world.operations.get(call.params["op"])
    if op is None:
        raise NotFound("OperationNotFound", f"Operation '{call.params['op']}' was not found.")
    return op


def _poll_status(call: Call) -> Reply:
    op = _operation(call)
    body: dict[str, Any] = {
        "name": op.id,
        "status": op.status,
        "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(op.started)),
    }
    if op.status == "Failed":
        body["error"] = op.error or {
            "code": "ProvisioningFailed",
            "message": f"The operation '{op.action}' failed (a fault injected by the sandbox).",
        }
    headers = {"Retry-After": str(op.retry_after(call.now))} if op.status == "InProgress" else {}
    return Reply(200, body, headers)


def _poll_result(call: Call) -> Reply:
    op = _operation(call)
    if op.status == "InProgress":
        return Reply(
            202,
            None,
            {
                "Location": f"{call.base_url}{call.path}?{_qs(call)}",
                "Retry-After": str(op.retry_after(call.now)),
            },
        )
    if op.status == "Failed":
        if op.error is not None:
            return Reply(400, {"error": op.error})
        error = ArmError("ProvisioningFailed", f"The operation '{op.action}' failed.")
        return Reply(500, error.body())
    return Reply(200, None)


def _qs(call: Call) -> str:
    return "&".join(f"{k}={v}" for k, v in call.query.items())


def poll_routes() -> list[Route]:
    """The Azure-AsyncOperation and Location URLs that ``accept`` hands out."""
    base = "/subscriptions/{sub}/providers/{ns}/locations/{loc}"
    return [
        route("GET", base + "/operations/{op}", "poll", _poll_status, public=True),
        route("GET", base + "/operationResults/{op}", "poll", _poll_result, public=True),
    ]

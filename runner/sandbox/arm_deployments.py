"""Microsoft.Resources/deployments at resource-group scope: create, read, list, delete,
operations, validate, what-if, cancel and export (the engine is ``deployments``)."""

from __future__ import annotations

import math
from typing import Any

from .arm_core import Call, Reply, Route, body_object, polling_headers, route
from .deployments import Engine, TemplateError
from .errors import BadRequest, Conflict, NotFound
from .world import Resource

__all__ = ["DEPLOYMENT", "routes"]

DEPLOYMENT = "Microsoft.Resources/deployments"


def _id(call: Call) -> str:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    return f"{rg.id}/providers/{DEPLOYMENT}/{call.params['name']}"


def _engine(call: Call) -> Engine:
    found = call.world.get(_id(call))
    if found is None:
        raise NotFound(
            "DeploymentNotFound", f"Deployment '{call.params['name']}' could not be found."
        )
    engine: Engine = found.hidden["engine"]
    return engine


def _render(engine: Engine) -> dict[str, Any]:
    d = engine.deployment
    return {
        "id": d.id,
        "name": d.name,
        "type": DEPLOYMENT,
        "properties": engine.render_properties(),
    }


def _planned(call: Call) -> Engine:
    """An engine for the request body's template, planned (400 InvalidTemplate if not)."""
    body = body_object(call)
    props = body.get("properties")
    if not isinstance(props, dict):
        raise BadRequest("InvalidRequestContent", "The request content must have 'properties'.")
    if "templateLink" in props or "parametersLink" in props:
        raise BadRequest(
            "InvalidTemplate",
            "Template and parameter links are not served by the sandbox (it has no network): "
            "send the template inline ('properties.template').",
        )
    mode = str(props.get("mode", "Incremental"))
    if mode.lower() != "incremental":
        raise BadRequest(
            "InvalidDeploymentMode", f"The deployment mode '{mode}' is not served by the sandbox."
        )
    template = props.get("template")
    if not isinstance(template, dict):
        raise BadRequest(
            "InvalidTemplate", "The deployment has no template ('properties.template')."
        )
    name = call.params["name"]
    deployment = Resource(id=_id(call), name=name, type=DEPLOYMENT, location=None, properties={})
    engine = Engine(call, deployment, template, dict(props.get("parameters") or {}))
    try:
        engine.plan()
    except TemplateError as exc:
        raise BadRequest(
            "InvalidTemplate", f"Deployment template validation failed: '{exc}'."
        ) from None
    return engine


def _put(call: Call) -> Reply:
    existing = call.world.get(_id(call))
    if existing is not None and existing.hidden["engine"].state in ("Accepted", "Running"):
        raise Conflict(
            "DeploymentActive",
            f"The deployment '{existing.name}' is already in progress. Please wait for it to "
            "complete or cancel it.",
        )
    engine = _planned(call)
    engine.deployment.hidden["engine"] = engine
    call.world.put(engine.deployment)
    # The deployment's own operation ends when the engine says so (ready_at set then).
    op = call.world.start_operation(
        action=f"{DEPLOYMENT}/write",
        latency=math.inf,
        fail=False,
        on_success=lambda: None,
        on_failure=lambda: None,
        now=call.now,
    )
    # Started from an operation due now, so it runs inside the world's settle loop.
    call.world.start_operation(
        action=f"{DEPLOYMENT}/write",
        latency=0,
        fail=False,
        on_success=lambda: engine.start(op),
        on_failure=lambda: None,
        now=call.now,
    )
    status = 200 if existing is not None else 201
    return Reply(status, _render(engine), polling_headers(call, op))


def _get(call: Call) -> Reply:
    return Reply(200, _render(_engine(call)))


def _head(call: Call) -> Reply:
    return Reply(204 if call.world.get(_id(call)) is not None else 404)


def _list(call: Call) -> Reply:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    found = call.world.of_type(DEPLOYMENT, rg.id)
    return Reply(200, {"value": [_render(d.hidden["engine"]) for d in found]})


def _delete(call: Call) -> Reply:
    found = call.world.get(_id(call))
    if found is None:
        return Reply(204)
    if found.hidden["engine"].state in ("Accepted", "Running"):
        raise Conflict("DeploymentActive", f"The deployment '{found.name}' is in progress.")
    call.world.remove_tree(found.id)
    return Reply(204)


def _operations(call: Call) -> Reply:
    return Reply(200, {"value": _engine(call).operations()})


def _operation(call: Call) -> Reply:
    for op in _engine(call).operations():
        if op["operationId"].lower() == call.params["op"].lower():
            return Reply(200, op)
    raise NotFound("DeploymentOperationNotFound", f"Operation '{call.params['op']}' not found.")


def _validate(call: Call) -> Reply:
    engine = _planned(call)
    body = _render(engine)
    body["properties"]["provisioningState"] = "Succeeded"
    body["properties"]["validatedResources"] = [{"id": p.id} for p in engine.resources.values()]
    return Reply(200, body)


def _what_if(call: Call) -> Reply:
    engine = _planned(call)
    changes = []
    for p in engine.resources.values():
        before = call.world.get(p.id)
        changes.append(
            {
                "resourceId": p.id,
                "changeType": "Modify" if before is not None else "Create",
                "before": before.render() if before is not None else None,
                "after": {"id": p.id, "name": p.name.rsplit("/", 1)[-1], "type": p.type,
                          "apiVersion": p.api_version},
            }
        )  # fmt: skip
    return Reply(200, {"status": "Succeeded", "properties": {"changes": changes}})


def _cancel(call: Call) -> Reply:
    engine = _engine(call)
    if engine.state not in ("Accepted", "Running"):
        raise Conflict(
            "DeploymentCannotBeCancelled",
            f"The deployment '{engine.name}' cannot be cancelled: it is {engine.state}.",
        )
    engine.cancel()
    return Reply(204)


def _export(call: Call) -> Reply:
    return Reply(200, {"template": _engine(call).template})


def routes() -> list[Route]:
    """Deployment routes (resource-group scope), under both paths ARM answers: with
    ``providers/Microsoft.Resources`` and without (the SDK lists operations there)."""
    act = DEPLOYMENT
    out: list[Route] = []
    rg = "/subscriptions/{sub}/resourceGroups/{rg}"
    for base in (f"{rg}/providers/{DEPLOYMENT}", f"{rg}/deployments"):
        item = base + "/{name}"
        out += [
            route("PUT", item, f"{act}/write", _put),
            route("GET", item, f"{act}/read", _get),
            route("HEAD", item, f"{act}/read", _head),
            route("DELETE", item, f"{act}/delete", _delete),
            route("GET", base, f"{act}/read", _list, 1),
            route("GET", item + "/operations", f"{act}/operations/read", _operations, 1),
            route("GET", item + "/operations/{op}", f"{act}/operations/read", _operation, 2),
            route("POST", item + "/validate", f"{act}/validate/action", _validate, 1),
            route("POST", item + "/whatIf", f"{act}/whatIf/action", _what_if, 1),
            route("POST", item + "/cancel", f"{act}/cancel/action", _cancel, 1),
            route("POST", item + "/exportTemplate", f"{act}/exportTemplate/action", _export, 1),
        ]
    return out

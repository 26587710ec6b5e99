"""``Microsoft.Resources/tags``: the tags of any resource or group, by scope
(``{scope}/providers/Microsoft.Resources/tags/default``), as ``az tag`` uses them."""

from __future__ import annotations

from typing import Any

from .arm_core import Call, Reply, Route, body_object, route
from .errors import BadRequest, NotFound
from .world import Resource

__all__ = ["routes"]

_TAGS = "Microsoft.Resources/tags"


def _target(call: Call) -> Resource:
    scope = call.params["scope"]
    found = call.world.get(scope)
    if found is None or found.location is None:
        raise NotFound("ResourceNotFound", f"The resource '{scope}' was not found.")
    return found


def _body(resource: Resource) -> dict[str, Any]:
    return {
        "id": f"{resource.id}/providers/{_TAGS}/default",
        "name": "default",
        "type": _TAGS,
        "properties": {"tags": dict(resource.tags)},
    }


def _given(call: Call) -> dict[str, str]:
    tags = (body_object(call).get("properties") or {}).get("tags")
    if not isinstance(tags, dict):
        raise BadRequest("InvalidRequestContent", "The request must have 'properties.tags'.")
    if len(tags) > 50:
        raise BadRequest("InvalidTagCount", "A resource can have at most 50 tags.")
    return {str(k): str(v) for k, v in tags.items()}


def _get(call: Call) -> Reply:
    return Reply(200, _body(_target(call)))


def _put(call: Call) -> Reply:
    resource = _target(call)
    resource.tags = _given(call)
    return Reply(200, _body(resource))


def _patch(call: Call) -> Reply:
    resource = _target(call)
    tags = _given(call)
    operation = str(body_object(call).get("operation", "")).lower()
    if operation == "merge":
        resource.tags = {**resource.tags, **tags}
    elif operation == "replace":
        resource.tags = tags
    elif operation == "delete":
        resource.tags = {
            k: v for k, v in resource.tags.items() if not (k in tags and tags[k] in ("", v))
        }
    else:
        raise BadRequest(
            "InvalidTagOperation", "The operation must be one of 'Merge', 'Replace', 'Delete'."
        )
    return Reply(200, _body(resource))


def _delete(call: Call) -> Reply:
    _target(call).tags = {}
    return Reply(200)


def routes() -> list[Route]:
    """Tags at any resource or resource-group scope."""
    item = "{scope*}/providers/" + _TAGS + "/default"
    return [
        route("GET", item, f"{_TAGS}/read", _get, 2),
        route("PUT", item, f"{_TAGS}/write", _put, 2),
        route("PATCH", item, f"{_TAGS}/write", _patch, 2),
        route("DELETE", item, f"{_TAGS}/delete", _delete, 2),
    ]

"""Create, read, list and delete of ARM resources that provision asynchronously.

Network and compute resources behave alike: PUT answers 201 (200 on update) showing
``Creating``/``Updating`` with an ``Azure-AsyncOperation`` header, the operation then
completes after the configured latency; DELETE answers 202 with both polling headers.
Per-type behaviour (validation, references, rendering) is passed in as functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import catalog
from .arm_core import Call, Reply, accept, body_object, not_found
from .errors import BadRequest, Conflict
from .world import Resource, World

__all__ = ["Kind", "delete", "get", "list_in", "patch", "put", "render"]

# Build (properties, extra top-level fields) from the request body and the existing
# resource (None on create); raise ArmError to refuse.
Builder = Callable[
    [Call, Resource, "Resource | None", dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]
]
# Raise ArmError if the resource may not be deleted now (e.g. still referenced).
DeleteCheck = Callable[[World, Resource], None]
Renderer = Callable[[World, Resource], dict[str, Any]]

_renderers: dict[str, Renderer] = {}


@dataclass(frozen=True)
class Kind:
    """A resource type: its ARM type name and behaviour."""

    type: str  # e.g. "Microsoft.Network/virtualNetworks"
    build: Builder
    check_name: Callable[[str, dict[str, Any]], None]
    can_delete: DeleteCheck | None = None
    tracked: bool = True  # has a location (child resources such as subnets do not)
    on_provisioned: Callable[[World, Resource], None] | None = None
    on_deleted: Callable[[World, Resource], None] | None = None

    def register(self, renderer: Renderer) -> None:
        """Use ``renderer`` to show resources of this kind (adds back-references)."""
        _renderers[self.type.lower()] = renderer


def render(world: World, resource: Resource) -> dict[str, Any]:
    """The resource as ARM returns it, with its type's extra fields."""
    renderer = _renderers.get(resource.type.lower())
    return renderer(world, resource) if renderer else resource.render()


def put(
    call: Call, kind: Kind, resource_id: str, name: str, body: dict[str, Any] | None = None
) -> Reply:
    """Create or update; answer 201/200 with an Azure-AsyncOperation header."""
    body = body if body is not None else body_object(call)
    kind.check_name(name, body)
    existing = call.world.get(resource_id)
    location: str | None = None
    if kind.tracked:
        raw = body.get("location")
        if not isinstance(raw, str) or not raw:
            raise BadRequest(
                "LocationRequired", "The location property is required for this definition."
            )
        location = catalog.location_name(raw)
        if location is None:
            raise BadRequest(
                "LocationNotAvailableForResourceType",
                f"The provided location '{raw}' is not available for resource type "
                f"'{kind.type}'. List of available regions for the resource type is "
                f"'{','.join(catalog.LOCATIONS)}'.",
            )
        if existing is not None and existing.location != location:
            raise BadRequest(
                "InvalidResourceLocation",
                f"The resource '{name}' already exists in location '{existing.location}' in "
                f"resource group. A resource with the same name cannot be created in location "
                f"'{location}'. Please select a new resource name.",
            )
    if existing is not None and existing.provisioning_state in ("Creating", "Updating", "Deleting"):
        # ARM answers 409 for most types while an operation runs; a retry then succeeds.
        raise Conflict(
            "AnotherOperationInProgress",
            f"Another operation on this or dependent resource is in progress on '{name}'.",
        )
    draft = existing or Resource(
        id=resource_id, name=name, type=kind.type, location=location, properties={}
    )
    properties, extra = kind.build(call, draft, existing, body)
    draft.properties = properties
    draft.extra = extra
    if kind.tracked:
        draft.tags = dict(body.get("tags") or {})
    draft.provisioning_state = "Updating" if existing is not None else "Creating"
    call.world.put(draft)
    shown = render(call.world, draft)

    def succeeded() -> None:
        draft.provisioning_state = "Succeeded"
        if kind.on_provisioned is not None:
            kind.on_provisioned(call.world, draft)

    def failed() -> None:
        draft.provisioning_state = "Failed"

    status = 200 if existing is not None else 201
    return accept(call, status=status, body=shown, on_success=succeeded, on_failure=failed)


def patch(call: Call, kind: Kind, resource_id: str, type_: str, name: str) -> Reply:
    """PATCH: ``{"tags": …}`` alone is UpdateTags (200 at once, as the network RP does);
    anything else is merged into the resource and applied like a PUT (``*_Update``)."""
    existing = call.world.get(resource_id)
    if existing is None:
        raise not_found(type_, name, call.params.get("rg", ""))
    body = body_object(call)
    if set(body) <= {"tags"}:
        existing.tags = {str(k): str(v) for k, v in (body.get("tags") or {}).items()}
        return Reply(200, render(call.world, existing))
    current = render(call.world, existing)
    current["properties"].pop("provisioningState", None)
    merged: dict[str, Any] = {
        **{k: v for k, v in current.items() if k not in ("id", "name", "type", "etag")},
        **{k: v for k, v in body.items() if k != "properties"},
        "properties": _merge(current["properties"], body.get("properties") or {}),
    }
    return put(call, kind, resource_id, name, merged)


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def get(call: Call, resource_id: str, type_: str, name: str) -> Reply:
    """GET one resource, or 404 ResourceNotFound."""
    resource = call.world.get(resource_id)
    if resource is None:
        raise not_found(type_, name, call.params.get("rg", ""))
    return Reply(200, render(call.world, resource))


def list_in(call: Call, type_: str, under: str) -> Reply:
    """List resources of a type beneath an id prefix (a resource group or subscription)."""
    found = call.world.of_type(type_, under)
    return Reply(200, {"value": [render(call.world, r) for r in found]})


def delete(call: Call, kind: Kind, resource_id: str) -> Reply:
    """Delete: 204 if absent, else 202 with both polling headers."""
    resource = call.world.get(resource_id)
    if resource is None:
        return Reply(204)
    if kind.can_delete is not None:
        kind.can_delete(call.world, resource)
    previous = resource.provisioning_state
    resource.provisioning_state = "Deleting"

    def succeeded() -> None:
        call.world.remove_tree(resource.id)
        if kind.on_deleted is not None:
            kind.on_deleted(call.world, resource)

    def failed() -> None:
        resource.provisioning_state = previous

    return accept(
        call,
        status=202,
        body=None,
        on_success=succeeded,
        on_failure=failed,
        location_header=True,
    )

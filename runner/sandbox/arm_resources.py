"""Microsoft.Resources: subscriptions and resource groups."""

from __future__ import annotations

from . import catalog
from .arm_core import Call, Reply, Route, accept, body_object, route
from .errors import ArmError, BadRequest, Conflict
from .naming import check_resource_group_name
from .world import Resource, scope_covers

__all__ = ["routes"]

_RG_TYPE = "Microsoft.Resources/resourceGroups"
_RG_ACTION = "Microsoft.Resources/subscriptions/resourceGroups"


def _subscription_body(call: Call, subscription_id: str) -> dict[str, object]:
    return {
        "id": f"/subscriptions/{subscription_id}",
        "subscriptionId": subscription_id,
        "tenantId": call.world.tenant_id,
        "displayName": "Sandbox subscription",
        "state": "Enabled",
        "authorizationSource": "RoleBased",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def _list_subscriptions(call: Call) -> Reply:
    # Like ARM: a caller sees the subscriptions where it holds some role.
    mine = {
        a.scope.split("/")[2].lower()
        for a in call.world.assignments
        if a.principal_id.lower() == call.claims.object_id.lower() and a.scope.count("/") >= 2
    }
    value = [_subscription_body(call, s) for k, s in call.world.subscriptions.items() if k in mine]
    return Reply(200, {"value": value})


def _get_subscription(call: Call) -> Reply:
    return Reply(200, _subscription_body(call, call.sub))


def _rg_id(call: Call) -> str:
    return f"/subscriptions/{call.sub}/resourceGroups/{call.params['rg']}"


def _put_rg(call: Call) -> Reply:
    name = call.params["rg"]
    check_resource_group_name(name)
    body = body_object(call)
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise BadRequest(
            "LocationRequired", "The location property is required for this definition."
        )
    region = catalog.location_name(location)
    if region is None:
        raise BadRequest(
            "LocationNotAvailableForResourceGroup",
            f"The provided location '{location}' is not available for resource group. List of "
            f"available regions is '{','.join(catalog.LOCATIONS)}'.",
        )
    tags = body.get("tags") or {}
    existing = call.world.get(_rg_id(call))
    if existing is not None:
        if existing.provisioning_state == "Deleting":
            raise Conflict(
                "ResourceGroupBeingDeleted",
                f"The resource group '{existing.name}' is in deprovisioning state and cannot "
                "perform this operation.",
            )
        if existing.location != region:
            raise ArmError(
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already "
                f"exists in location '{existing.location}'.",
                status=409,
            )
        existing.tags = dict(tags)
        return Reply(200, existing.render())
    rg = Resource(
        id=_rg_id(call),
        name=name,
        type=_RG_TYPE,
        location=region,
        properties={},
        tags=dict(tags),
    )
    call.world.put(rg)
    return Reply(201, rg.render())


def _patch_rg(call: Call) -> Reply:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    body = body_object(call)
    if "location" in body and catalog.location_name(str(body["location"])) != rg.location:
        raise BadRequest(
            "InvalidRequestContent", "The location of a resource group cannot be changed."
        )
    if "tags" in body:
        rg.tags = {str(k): str(v) for k, v in (body.get("tags") or {}).items()}
    if "managedBy" in body:
        rg.extra["managedBy"] = body["managedBy"]
    return Reply(200, rg.render())


def _get_rg(call: Call) -> Reply:
    return Reply(200, call.world.resource_group(call.sub, call.params["rg"]).render())


def _head_rg(call: Call) -> Reply:
    return Reply(204 if call.world.get(_rg_id(call)) is not None else 404)


def _list_rgs(call: Call) -> Reply:
    groups = call.world.of_type(_RG_TYPE, f"/subscriptions/{call.sub}")
    return Reply(200, {"value": [g.render() for g in groups]})


def _delete_rg(call: Call) -> Reply:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    rg.provisioning_state = "Deleting"

    def done() -> None:
        call.world.remove_tree(rg.id)

    def failed() -> None:
        rg.provisioning_state = "Succeeded"

    # ARM answers resource-group deletes with 202 + Location only (no Azure-AsyncOperation).
    reply = accept(call, status=202, body=None, on_success=done, on_failure=failed)
    location = reply.headers["Azure-AsyncOperation"].replace("/operations/", "/operationResults/")
    return Reply(202, None, {"Location": location, "Retry-After": reply.headers["Retry-After"]})


def _list_rg_resources(call: Call) -> Reply:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    value = [
        {k: v for k, v in r.render().items() if k != "properties"}
        for r in call.world.resources.values()
        if r.type.count("/") == 1
        and not r.type.startswith("Microsoft.Resources/")
        and scope_covers(rg.id, r.id)
    ]
    return Reply(200, {"value": value})


def routes() -> list[Route]:
    """Subscription and resource-group routes."""
    sub = "/subscriptions/{sub}"
    rg = sub + "/resourceGroups/{rg}"
    return [
        route(
            "GET",
            "/subscriptions",
            "Microsoft.Resources/subscriptions/read",
            _list_subscriptions,
            public=True,
        ),
        route("GET", sub, "Microsoft.Resources/subscriptions/read", _get_subscription),
        route("GET", sub + "/resourceGroups", f"{_RG_ACTION}/read", _list_rgs, scope_trim=1),
        route("PUT", rg, f"{_RG_ACTION}/write", _put_rg),
        route("GET", rg, f"{_RG_ACTION}/read", _get_rg),
        route("HEAD", rg, f"{_RG_ACTION}/read", _head_rg),
        route("DELETE", rg, f"{_RG_ACTION}/delete", _delete_rg),
        route("PATCH", rg, f"{_RG_ACTION}/write", _patch_rg),
        route("GET", rg + "/resources", f"{_RG_ACTION}/resources/read", _list_rg_resources, 1),
    ]

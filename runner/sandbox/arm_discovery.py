"""What clients ask before they act: cloud metadata, providers, locations, sizes, resources.

``/metadata/endpoints`` and the image alias document are public (no token), like ARM's;
the rest are ordinary authorised ARM reads.
"""

from __future__ import annotations

from typing import Any

from . import arm_tracked as tracked
from . import catalog
from .arm_core import Call, Reply, Route, route
from .errors import NotFound
from .odata import matches_filter

__all__ = ["routes"]


def _provider(call: Call, namespace: str) -> dict[str, Any]:
    display = list(catalog.LOCATIONS.values())
    types = []
    for type_ in catalog.RESOURCE_TYPES[namespace]:
        types.append(
            {
                "resourceType": type_,
                "locations": [] if type_ in catalog.GLOBAL_TYPES else display,
                "apiVersions": list(catalog.api_versions(namespace)),
                "defaultApiVersion": catalog.api_versions(namespace)[0],
                "capabilities": "None",
            }
        )
    return {
        "id": f"/subscriptions/{call.sub}/providers/{namespace}",
        "namespace": namespace,
        "registrationState": "Registered",
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": types,
    }


def _namespace(call: Call) -> str:
    asked = call.params["ns"]
    for namespace in catalog.RESOURCE_TYPES:
        if namespace.lower() == asked.lower():
            return namespace
    raise NotFound("InvalidResourceNamespace", f"The resource namespace '{asked}' is invalid.")


def _list_providers(call: Call) -> Reply:
    return Reply(200, {"value": [_provider(call, ns) for ns in catalog.RESOURCE_TYPES]})


def _get_provider(call: Call) -> Reply:
    return Reply(200, _provider(call, _namespace(call)))


def _register_provider(call: Call) -> Reply:
    return Reply(200, _provider(call, _namespace(call)))


def _list_locations(call: Call) -> Reply:
    value = [
        {
            "id": f"/subscriptions/{call.sub}/locations/{name}",
            "name": name,
            "type": "Region",
            "displayName": display,
            "regionalDisplayName": display,
            "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
        }
        for name, display in catalog.LOCATIONS.items()
    ]
    return Reply(200, {"value": value})


def _vm_sizes(call: Call) -> Reply:
    if catalog.location_name(call.params["loc"]) is None:
        raise NotFound(
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location '{call.params['loc']}'.",
        )
    return Reply(200, {"value": [s.vm_size() for s in catalog.SIZES]})


def _skus(call: Call) -> Reply:
    wanted = [
        name
        for name in catalog.LOCATIONS
        if matches_filter(call.query.get("$filter", ""), {"location": name})
    ]
    return Reply(200, {"value": [s.sku(loc) for loc in wanted for s in catalog.SIZES]})


def _list_resources(call: Call) -> Reply:
    """Every top-level resource of the subscription, filtered as ``$filter`` asks."""
    prefix = f"/subscriptions/{call.sub}/resourcegroups/"
    shown = []
    for key, resource in call.world.resources.items():
        if not key.startswith(prefix) or resource.type.count("/") != 1:
            continue
        if resource.type.lower().startswith("microsoft.resources/"):
            continue  # groups and deployments are not resources of the list
        body = {k: v for k, v in tracked.render(call.world, resource).items() if k != "properties"}
        fields = {
            "resourceType": resource.type,
            "name": resource.name,
            "location": resource.location or "",
            "resourceGroup": resource.id.split("/")[4],
            **{f"tagName:{k}": v for k, v in resource.tags.items()},
        }
        if matches_filter(call.query.get("$filter", ""), fields):
            shown.append(body)
    return Reply(200, {"value": shown})


def routes() -> list[Route]:
    """Providers, locations, sizes, SKUs and the subscription's resource list."""
    sub = "/subscriptions/{sub}"
    compute = sub + "/providers/Microsoft.Compute"
    return [
        route("GET", sub + "/providers", "Microsoft.Resources/providers/read", _list_providers),
        route("GET", sub + "/providers/{ns}", "Microsoft.Resources/providers/read", _get_provider),
        route(
            "POST",
            sub + "/providers/{ns}/register",
            "Microsoft.Resources/providers/register/action",
            _register_provider,
            1,
        ),
        route("GET", sub + "/locations", "Microsoft.Resources/subscriptions/read", _list_locations),
        route(
            "GET",
            compute + "/locations/{loc}/vmSizes",
            "Microsoft.Compute/locations/vmSizes/read",
            _vm_sizes,
            1,
        ),
        route("GET", compute + "/skus", "Microsoft.Compute/skus/read", _skus, 1),
        route("GET", sub + "/resources", "Microsoft.Resources/subscriptions/resources/read",
              _list_resources, 1),
    ]  # fmt: skip

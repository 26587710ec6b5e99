"""Microsoft.Network routes: virtual networks and subnets, NSGs, public IPs, NICs."""

from __future__ import annotations

from . import arm_tracked as tracked
from . import network_rules
from .arm_core import Call, Reply, Route, route
from .errors import NotFound
from .network_kinds import KINDS, SUBNET_KIND
from .network_refs import NS, SUBNET, VNET

__all__ = ["routes"]


def _rg_prefix(call: Call) -> str:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    return f"{rg.id}/providers/{NS}"


def _top_level_routes(segment: str, kind: tracked.Kind) -> list[Route]:
    base = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + f"{NS}/{segment}"
    action = kind.type

    def item_id(call: Call) -> str:
        return f"{_rg_prefix(call)}/{segment}/{call.params['name']}"

    def do_put(call: Call) -> Reply:
        return tracked.put(call, kind, item_id(call), call.params["name"])

    def do_get(call: Call) -> Reply:
        return tracked.get(call, item_id(call), kind.type, call.params["name"])

    def do_delete(call: Call) -> Reply:
        return tracked.delete(call, kind, item_id(call))

    def do_list(call: Call) -> Reply:
        return tracked.list_in(call, kind.type, _rg_prefix(call))

    def do_patch(call: Call) -> Reply:
        return tracked.patch(call, kind, item_id(call), kind.type, call.params["name"])

    def do_list_all(call: Call) -> Reply:
        return tracked.list_in(call, kind.type, f"/subscriptions/{call.sub}")

    return [
        route("PUT", base + "/{name}", f"{action}/write", do_put),
        route("GET", base + "/{name}", f"{action}/read", do_get),
        route("DELETE", base + "/{name}", f"{action}/delete", do_delete),
        route("PATCH", base + "/{name}", f"{action}/write", do_patch),
        route("GET", base, f"{action}/read", do_list, scope_trim=1),
        route(
            "GET",
            "/subscriptions/{sub}/providers/" + f"{NS}/{segment}",
            f"{action}/read",
            do_list_all,
            1,
        ),
    ]


def _subnet_routes() -> list[Route]:
    vnet = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + f"{VNET}/{{vnet}}"

    def vnet_id(call: Call) -> str:
        vid = f"{_rg_prefix(call)}/virtualNetworks/{call.params['vnet']}"
        found = call.world.get(vid)
        if found is None:
            raise NotFound(
                "ParentResourceNotFound",
                "Can not perform requested operation on nested resource. Parent resource "
                f"'{call.params['vnet']}' not found.",
            )
        return found.id

    def do_put(call: Call) -> Reply:
        return tracked.put(
            call, SUBNET_KIND, f"{vnet_id(call)}/subnets/{call.params['name']}", call.params["name"]
        )

    def do_get(call: Call) -> Reply:
        sid = f"{vnet_id(call)}/subnets/{call.params['name']}"
        if call.world.get(sid) is None:
            raise NotFound("NotFound", f"Resource {sid} not found.")
        return tracked.get(call, sid, SUBNET, call.params["name"])

    def do_delete(call: Call) -> Reply:
        return tracked.delete(call, SUBNET_KIND, f"{vnet_id(call)}/subnets/{call.params['name']}")

    def do_list(call: Call) -> Reply:
        return tracked.list_in(call, SUBNET, vnet_id(call))

    return [
        route("PUT", vnet + "/subnets/{name}", f"{SUBNET}/write", do_put),
        route("GET", vnet + "/subnets/{name}", f"{SUBNET}/read", do_get),
        route("DELETE", vnet + "/subnets/{name}", f"{SUBNET}/delete", do_delete),
        route("GET", vnet + "/subnets", f"{SUBNET}/read", do_list, scope_trim=1),
    ]


def routes() -> list[Route]:
    """Every Microsoft.Network route the sandbox serves."""
    out = _subnet_routes() + network_rules.routes()
    for segment, kind in KINDS.items():
        out += _top_level_routes(segment, kind)
    return out

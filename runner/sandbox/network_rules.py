"""NSG security rules: child resources (``…/securityRules/{name}``) and inline in the NSG,
plus the six default rules Azure adds to every NSG."""

from __future__ import annotations

import uuid
from typing import Any

from .arm_core import Call, Reply, Route, accept, body_object, route
from .errors import BadRequest, NotFound
from .naming import check_network_name
from .network_refs import NS, NSG
from .world import Resource

__all__ = ["RULE", "default_rules", "inline_rules", "routes"]

RULE = f"{NSG}/securityRules"
_PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "esp": "Esp", "ah": "Ah", "*": "*"}
_DEFAULTS = (
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork",
     "Allow inbound traffic from all VMs in VNET"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*",
     "Allow inbound traffic from azure load balancer"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork",
     "Allow outbound traffic from all VMs to all VMs in VNET"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet",
     "Allow outbound traffic from all VMs to Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"),
)  # fmt: skip


def default_rules(nsg_id: str) -> list[dict[str, Any]]:
    """The ``defaultSecurityRules`` every NSG shows."""
    return [
        {
            "id": f"{nsg_id}/defaultSecurityRules/{name}",
            "name": name,
            "type": f"{NSG}/defaultSecurityRules",
            "properties": {
                "description": description,
                "protocol": "*",
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "sourceAddressPrefix": source,
                "destinationAddressPrefix": dest,
                "access": access,
                "priority": priority,
                "direction": direction,
                "sourcePortRanges": [],
                "destinationPortRanges": [],
                "sourceAddressPrefixes": [],
                "destinationAddressPrefixes": [],
                "provisioningState": "Succeeded",
            },
        }
        for name, priority, direction, access, source, dest, description in _DEFAULTS
    ]


def _rule_props(name: str, props: dict[str, Any], siblings: list[dict[str, Any]]) -> dict[str, Any]:
    """Validate one rule against ARM's rules and its siblings; return its properties."""
    priority = props.get("priority")
    if not isinstance(priority, int) or not 100 <= priority <= 4096:
        raise BadRequest(
            "SecurityRuleInvalidPriority",
            f"Security rule {name} has invalid Priority. Value provided: {priority}. Allowed "
            "range 100-4096.",
        )
    direction = str(props.get("direction", "")).capitalize()
    access = str(props.get("access", "")).capitalize()
    protocol = _PROTOCOLS.get(str(props.get("protocol", "")).lower())
    if direction not in ("Inbound", "Outbound") or access not in ("Allow", "Deny"):
        raise BadRequest(
            "SecurityRuleParameterContainsUnsupportedValue",
            f"Security rule parameter Direction/Access for rule with Id {name} cannot be "
            f"'{props.get('direction')}'/'{props.get('access')}'.",
        )
    if protocol is None:
        raise BadRequest(
            "SecurityRuleParameterContainsUnsupportedValue",
            f"Security rule parameter Protocol for rule with Id {name} cannot be "
            f"'{props.get('protocol')}'.",
        )
    for sibling in siblings:
        other = sibling["properties"]
        if (
            sibling["name"].lower() != name.lower()
            and other["priority"] == priority
            and other["direction"] == direction
        ):
            raise BadRequest(
                "SecurityRuleConflict",
                f"Security rule {name} conflicts with rule {sibling['name']}. Rules cannot have "
                "the same Priority and Direction. To learn more, see aka.ms/nsgrules.",
            )
    out = {
        **props,
        "protocol": protocol,
        "direction": direction,
        "access": access,
        "priority": priority,
    }
    for single, plural in (
        ("sourcePortRange", "sourcePortRanges"),
        ("destinationPortRange", "destinationPortRanges"),
        ("sourceAddressPrefix", "sourceAddressPrefixes"),
        ("destinationAddressPrefix", "destinationAddressPrefixes"),
    ):
        out.setdefault(plural, [])
        if single not in out and not out[plural]:
            raise BadRequest(
                "SecurityRuleParameterContainsUnsupportedValue",
                f"Security rule {name} needs '{single}' or '{plural}'.",
            )
    return out


def _rule(nsg_id: str, name: str, props: dict[str, Any], state: str) -> dict[str, Any]:
    return {
        "id": f"{nsg_id}/securityRules/{name}",
        "name": name,
        "type": RULE,
        "etag": f'W/"{uuid.uuid4()}"',
        "properties": {**props, "provisioningState": state},
    }


def inline_rules(nsg_id: str, rules: list[Any]) -> list[dict[str, Any]]:
    """The NSG's rules from its PUT body (they replace the current ones, as in ARM),
    validated together before anything changes."""
    kept: list[dict[str, Any]] = []
    for spec in rules:
        if not isinstance(spec, dict):
            continue
        name = str(spec.get("name", ""))
        check_network_name(name, "security rule")
        props = _rule_props(name, spec.get("properties") or {}, kept)
        kept.append(_rule(nsg_id, name, props, "Succeeded"))
    return kept


def _nsg(call: Call) -> Resource:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    found = call.world.get(f"{rg.id}/providers/{NS}/networkSecurityGroups/{call.params['nsg']}")
    if found is None:
        raise NotFound(
            "ParentResourceNotFound",
            "Can not perform requested operation on nested resource. Parent resource "
            f"'{call.params['nsg']}' not found.",
        )
    return found


def _index(nsg: Resource, name: str) -> int | None:
    rules: list[dict[str, Any]] = nsg.properties["securityRules"]
    return next((i for i, r in enumerate(rules) if r["name"].lower() == name.lower()), None)


def _put(call: Call) -> Reply:
    nsg, name = _nsg(call), call.params["name"]
    check_network_name(name, "security rule")
    rules: list[dict[str, Any]] = nsg.properties["securityRules"]
    at = _index(nsg, name)
    others = [r for i, r in enumerate(rules) if i != at]
    props = _rule_props(name, body_object(call).get("properties") or {}, others)
    rule = _rule(nsg.id, name, props, "Updating" if at is not None else "Creating")
    if at is None:
        rules.append(rule)
    else:
        rules[at] = rule

    def succeeded() -> None:
        rule["properties"]["provisioningState"] = "Succeeded"

    def failed() -> None:
        rule["properties"]["provisioningState"] = "Failed"

    status = 200 if at is not None else 201
    return accept(call, status=status, body=rule, on_success=succeeded, on_failure=failed)


def _get(call: Call) -> Reply:
    nsg = _nsg(call)
    at = _index(nsg, call.params["name"])
    if at is None:
        raise NotFound(
            "NotFound", f"Resource {nsg.id}/securityRules/{call.params['name']} not found."
        )
    return Reply(200, nsg.properties["securityRules"][at])


def _delete(call: Call) -> Reply:
    nsg = _nsg(call)
    if _index(nsg, call.params["name"]) is None:
        return Reply(204)

    def succeeded() -> None:
        at = _index(nsg, call.params["name"])
        if at is not None:
            del nsg.properties["securityRules"][at]

    return accept(
        call, status=202, body=None, on_success=succeeded, on_failure=lambda: None,
        location_header=True,
    )  # fmt: skip


def _list(call: Call) -> Reply:
    return Reply(200, {"value": list(_nsg(call).properties["securityRules"])})


def _defaults(call: Call) -> Reply:
    return Reply(200, {"value": default_rules(_nsg(call).id)})


def routes() -> list[Route]:
    """securityRules as child resources of an NSG."""
    nsg = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + f"{NSG}/{{nsg}}"
    item = nsg + "/securityRules/{name}"
    return [
        route("PUT", item, f"{RULE}/write", _put),
        route("GET", item, f"{RULE}/read", _get),
        route("DELETE", item, f"{RULE}/delete", _delete),
        route("GET", nsg + "/securityRules", f"{RULE}/read", _list, 1),
        route("GET", nsg + "/defaultSecurityRules", f"{NSG}/defaultSecurityRules/read",
              _defaults, 1),
    ]  # fmt: skip

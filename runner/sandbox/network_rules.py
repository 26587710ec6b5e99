"""NSG security rules: child resources (``…/securityRules/{name}``) and inline in the NSG,
plus the six default rules Azure adds to every NSG."""

from __future__ import annotations

from typing import Any

from . import arm_tracked as tracked
from .arm_core import Call, Reply, Route, route
from .errors import BadRequest, NotFound
from .naming import check_network_name
from .network_refs import NS, NSG
from .world import Resource, World

__all__ = ["RULE", "RULE_KIND", "default_rules", "render_rules", "routes", "sync_inline"]

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


def _rule_props(name: str, props: dict[str, Any], siblings: list[Resource]) -> dict[str, Any]:
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
        other = sibling.properties
        if (
            sibling.name.lower() != name.lower()
            and other["priority"] == priority
            and other["direction"] == direction
        ):
            raise BadRequest(
                "SecurityRuleConflict",
                f"Security rule {name} conflicts with rule {sibling.name}. Rules cannot have "
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


def sync_inline(world: World, nsg: Resource, rules: list[Any]) -> None:
    """Make the NSG's rules exactly ``rules`` (its PUT body's), validated before any change."""
    kept: list[Resource] = []
    for spec in rules:
        if not isinstance(spec, dict):
            continue
        name = str(spec.get("name", ""))
        check_network_name(name, "security rule")
        rule_id = f"{nsg.id}/securityRules/{name}"
        props = _rule_props(name, spec.get("properties") or {}, kept)
        rule = world.get(rule_id) or Resource(rule_id, name, RULE, None, {})
        rule.properties = props
        kept.append(rule)
    wanted = {r.id.lower() for r in kept}
    for old in world.of_type(RULE, nsg.id):
        if old.id.lower() not in wanted:
            world.remove_tree(old.id)
    for rule in kept:
        world.put(rule)


def render_rules(world: World, nsg: Resource) -> list[dict[str, Any]]:
    """The NSG's ``securityRules`` as ARM shows them inline."""
    return [r.render() for r in world.of_type(RULE, nsg.id)]


def _build(
    call: Call, draft: Resource, existing: Resource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    nsg_id = draft.id.rsplit("/securityRules/", 1)[0]
    siblings = [r for r in call.world.of_type(RULE, nsg_id) if r.id.lower() != draft.id.lower()]
    return _rule_props(draft.name, body.get("properties") or {}, siblings), {}


RULE_KIND = tracked.Kind(
    RULE, _build, lambda name, body: check_network_name(name, "security rule"), tracked=False
)


def routes() -> list[Route]:
    """securityRules as child resources of an NSG."""
    nsg = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + f"{NSG}/{{nsg}}"

    def nsg_id(call: Call) -> str:
        rg = call.world.resource_group(call.sub, call.params["rg"])
        found = call.world.get(f"{rg.id}/providers/{NS}/networkSecurityGroups/{call.params['nsg']}")
        if found is None:
            raise NotFound(
                "ParentResourceNotFound",
                "Can not perform requested operation on nested resource. Parent resource "
                f"'{call.params['nsg']}' not found.",
            )
        return found.id

    def rule_id(call: Call) -> str:
        return f"{nsg_id(call)}/securityRules/{call.params['name']}"

    def do_put(call: Call) -> Reply:
        return tracked.put(call, RULE_KIND, rule_id(call), call.params["name"])

    def do_get(call: Call) -> Reply:
        rid = rule_id(call)
        if call.world.get(rid) is None:
            raise NotFound("NotFound", f"Resource {rid} not found.")
        return tracked.get(call, rid, RULE, call.params["name"])

    def do_delete(call: Call) -> Reply:
        return tracked.delete(call, RULE_KIND, rule_id(call))

    def do_list(call: Call) -> Reply:
        return tracked.list_in(call, RULE, nsg_id(call))

    def do_defaults(call: Call) -> Reply:
        return Reply(200, {"value": default_rules(nsg_id(call))})

    item = nsg + "/securityRules/{name}"
    return [
        route("PUT", item, f"{RULE}/write", do_put),
        route("GET", item, f"{RULE}/read", do_get),
        route("DELETE", item, f"{RULE}/delete", do_delete),
        route("GET", nsg + "/securityRules", f"{RULE}/read", do_list, 1),
        route("GET", nsg + "/defaultSecurityRules", f"{NSG}/defaultSecurityRules/read",
              do_defaults, 1),
    ]  # fmt: skip

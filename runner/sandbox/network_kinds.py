"""Microsoft.Network resource kinds: validation, back-references and in-use checks."""

from __future__ import annotations

import ipaddress
import itertools
import uuid
from typing import Any

from . import arm_tracked as tracked
from . import network_rules
from .arm_core import Call, id_ref
from .errors import BadRequest
from .naming import check_network_name
from .network_refs import (
    NIC,
    NSG,
    PIP,
    SUBNET,
    VNET,
    ip_configs,
    parse_prefix,
    resolve_ref,
    used_by,
)
from .world import Resource, World

__all__ = ["KINDS", "SUBNET_KIND"]

# Fake public addresses: a string in 20.0.0.0/8 (an Azure range), never contacted.
_public_ips = itertools.count(1)


# -- subnets ----------------------------------------------------------------------------
def _subnet_props(
    call: Call,
    subnet_id: str,
    props: dict[str, Any],
    spaces: list[str],
    siblings: list[Resource],
) -> dict[str, Any]:
    name = subnet_id.rsplit("/", 1)[1]
    prefix = parse_prefix(props.get("addressPrefix"), f"Subnet '{name}'")
    vnet_nets = [parse_prefix(p, "Virtual network") for p in spaces]
    if not any(prefix.version == s.version and prefix.subnet_of(s) for s in vnet_nets):  # type: ignore[arg-type]
        raise BadRequest(
            "NetcfgSubnetRangeOutsideVnet",
            f"Subnet '{name}' is not valid because its IP address range is outside the IP "
            "address range of virtual network.",
        )
    for sibling in siblings:
        other = parse_prefix(sibling.properties["addressPrefix"], "Subnet")
        if sibling.name.lower() != name.lower() and prefix.overlaps(other):
            raise BadRequest(
                "NetcfgSubnetRangesOverlap",
                f"Subnet '{name}' is not valid because its IP address range overlaps with "
                f"that of an existing subnet '{sibling.name}' in virtual network.",
            )
    out: dict[str, Any] = {"addressPrefix": str(prefix)}
    nsg = resolve_ref(call, id_ref(props.get("networkSecurityGroup")), subnet_id, NSG)
    if nsg is not None:
        out["networkSecurityGroup"] = {"id": nsg.id}
    return out


def _check_subnet_free(world: World, subnet: Resource) -> None:
    users = used_by(world, "subnet", subnet.id)
    if users:
        raise BadRequest(
            "InUseSubnetCannotBeDeleted",
            f"Subnet {subnet.name} is in use by {users[0]} and cannot be deleted. In order to "
            "delete the subnet, delete all the resources within the subnet.",
        )


def _build_vnet(
    call: Call, draft: Resource, existing: Resource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    props = body.get("properties") or {}
    prefixes = [str(p) for p in (props.get("addressSpace") or {}).get("addressPrefixes") or []]
    if not prefixes:
        raise BadRequest(
            "InvalidRequestFormat", "A virtual network must have at least one address prefix."
        )
    for p in prefixes:
        parse_prefix(p, f"Virtual network '{draft.name}'")
    # The subnets of the body replace the current ones, as in ARM: omitted ones are deleted,
    # unless something uses them. Everything is validated before anything is changed.
    wanted = {s["name"].lower(): s for s in props.get("subnets") or [] if isinstance(s, dict)}
    current = call.world.of_type(SUBNET, draft.id)
    for subnet in current:
        if subnet.name.lower() not in wanted:
            _check_subnet_free(call.world, subnet)
    kept: list[Resource] = []
    for spec in wanted.values():
        name = str(spec["name"])
        check_network_name(name, "subnet")
        subnet_id = f"{draft.id}/subnets/{name}"
        sub_props = _subnet_props(call, subnet_id, spec.get("properties") or {}, prefixes, kept)
        subnet = call.world.get(subnet_id) or Resource(
            id=subnet_id, name=name, type=SUBNET, location=None, properties={}
        )
        subnet.properties = sub_props
        kept.append(subnet)
    for subnet in current:
        if subnet.name.lower() not in wanted:
            call.world.remove_tree(subnet.id)
    for subnet in kept:
        call.world.put(subnet)
    return {"addressSpace": {"addressPrefixes": prefixes}, "enableDdosProtection": False}, {}


def _render_vnet(world: World, vnet: Resource) -> dict[str, Any]:
    body = vnet.render()
    body["properties"]["subnets"] = [
        _render_subnet(world, s) for s in world.of_type(SUBNET, vnet.id)
    ]
    return body


def _render_subnet(world: World, subnet: Resource) -> dict[str, Any]:
    body = subnet.render()
    users = used_by(world, "subnet", subnet.id)
    if users:
        body["properties"]["ipConfigurations"] = [{"id": u} for u in users]
    return body


def _build_subnet(
    call: Call, draft: Resource, existing: Resource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    vnet_id = draft.id.rsplit("/subnets/", 1)[0]
    vnet = call.world.get(vnet_id)
    spaces = vnet.properties["addressSpace"]["addressPrefixes"] if vnet else []
    siblings = [s for s in call.world.of_type(SUBNET, vnet_id) if s.id.lower() != draft.id.lower()]
    return _subnet_props(call, draft.id, body.get("properties") or {}, spaces, siblings), {}


# -- NSGs, public IPs -------------------------------------------------------------------
def _build_nsg(
    call: Call, draft: Resource, existing: Resource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    props = body.get("properties") or {}
    rules = network_rules.inline_rules(draft.id, list(props.get("securityRules") or []))
    guid = existing.properties.get("resourceGuid") if existing else None
    return {"securityRules": rules, "resourceGuid": guid or str(uuid.uuid4())}, {}


def _render_nsg(world: World, nsg: Resource) -> dict[str, Any]:
    body = nsg.render()
    body["properties"]["defaultSecurityRules"] = network_rules.default_rules(nsg.id)
    nics = [
        n.id
        for n in world.of_type(NIC)
        if id_ref(n.properties.get("networkSecurityGroup")) == nsg.id
    ]
    subnets = [
        s.id
        for s in world.of_type(SUBNET)
        if (id_ref(s.properties.get("networkSecurityGroup")) or "").lower() == nsg.id.lower()
    ]
    if nics:
        body["properties"]["networkInterfaces"] = [{"id": i} for i in nics]
    if subnets:
        body["properties"]["subnets"] = [{"id": i} for i in subnets]
    return body


def _check_nsg_free(world: World, nsg: Resource) -> None:
    users = _render_nsg(world, nsg)["properties"]
    if users.get("networkInterfaces") or users.get("subnets"):
        raise BadRequest(
            "InUseNetworkSecurityGroupCannotBeDeleted",
            f"Network security group {nsg.id} cannot be deleted because it is in use by "
            "resources. In order to delete the Network security group, remove the association "
            "with the resource(s).",
        )


def _build_pip(
    call: Call, draft: Resource, existing: Resource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    props = body.get("properties") or {}
    version = props.get("publicIPAddressVersion", "IPv4")
    if existing is not None and existing.properties.get("publicIPAddressVersion") != version:
        raise BadRequest(
            "PropertyChangeNotAllowed",
            "Changing property 'publicIPAddressVersion' is not allowed.",
        )
    sku = body.get("sku") or {"name": "Standard", "tier": "Regional"}
    if existing is not None and "ipAddress" in existing.properties:
        address = existing.properties["ipAddress"]
    else:
        n = next(_public_ips)
        address = f"20.{(n >> 16) % 256}.{(n >> 8) % 256}.{n % 256}"
    out = {
        "publicIPAddressVersion": version,
        "publicIPAllocationMethod": props.get(
            "publicIPAllocationMethod", "Static" if sku.get("name") == "Standard" else "Dynamic"
        ),
        "idleTimeoutInMinutes": props.get("idleTimeoutInMinutes", 4),
        "ipAddress": address,
        "resourceGuid": str(uuid.uuid4()),
    }
    if "dnsSettings" in props:
        out["dnsSettings"] = props["dnsSettings"]
    return out, {"sku": sku}


def _render_pip(world: World, pip: Resource) -> dict[str, Any]:
    body = pip.render()
    users = used_by(world, "publicIPAddress", pip.id)
    if users:
        body["properties"]["ipConfiguration"] = {"id": users[0]}
    return body


def _check_pip_free(world: World, pip: Resource) -> None:
    users = used_by(world, "publicIPAddress", pip.id)
    if users:
        raise BadRequest(
            "PublicIPAddressCannotBeDeleted",
            f"Public IP address {pip.id} can not be deleted since it is still allocated to "
            f"resource {users[0]}. In order to delete the public IP, disassociate/detach the "
            "Public IP address from the resource.",
        )


# -- network interfaces -----------------------------------------------------------------
def _free_address(world: World, subnet: Resource, nic_id: str) -> str:
    used = {
        config["properties"].get("privateIPAddress")
        for nic, config in ip_configs(world)
        if nic.id.lower() != nic_id.lower()
    }
    network = ipaddress.ip_network(subnet.properties["addressPrefix"])
    # Azure keeps the first four addresses of a subnet (network, gateway, two for DNS).
    for host in itertools.islice(network.hosts(), 3, None):
        if str(host) not in used:
            return str(host)
    raise BadRequest(
        "SubnetIsFull", f"Subnet {subnet.name} with address prefix {network} has no free address."
    )


def _build_nic(
    call: Call, draft: Resource, existing: Resource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    props = body.get("properties") or {}
    configs_in = props.get("ipConfigurations") or []
    if not configs_in:
        raise BadRequest(
            "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            f"Network interface {draft.id} must have at least one IP configuration.",
        )
    configs = []
    for i, config in enumerate(configs_in):
        name = config.get("name") or f"ipconfig{i + 1}"
        cprops = config.get("properties") or {}
        subnet = resolve_ref(call, id_ref(cprops.get("subnet")), draft.id, SUBNET)
        if subnet is None:
            raise BadRequest(
                "SubnetNotSpecified", f"IP configuration {name} of {draft.id} has no subnet."
            )
        pip = resolve_ref(call, id_ref(cprops.get("publicIPAddress")), draft.id, PIP)
        if pip is not None:
            holders = [
                u
                for u in used_by(call.world, "publicIPAddress", pip.id)
                if not u.lower().startswith(draft.id.lower() + "/")
            ]
            if holders:
                raise BadRequest(
                    "PublicIPAddressInUse",
                    f"Resource {pip.id} is already in use by {holders[0]}.",
                )
        out: dict[str, Any] = {
            "privateIPAllocationMethod": cprops.get("privateIPAllocationMethod", "Dynamic"),
            "privateIPAddress": cprops.get("privateIPAddress")
            or _free_address(call.world, subnet, draft.id),
            "privateIPAddressVersion": "IPv4",
            "subnet": {"id": subnet.id},
            "primary": i == 0,
            "provisioningState": "Succeeded",
        }
        if pip is not None:
            out["publicIPAddress"] = {"id": pip.id}
        configs.append(
            {
                "id": f"{draft.id}/ipConfigurations/{name}",
                "name": name,
                "type": f"{NIC}/ipConfigurations",
                "properties": out,
            }
        )
    result: dict[str, Any] = {
        "ipConfigurations": configs,
        "enableAcceleratedNetworking": bool(props.get("enableAcceleratedNetworking", False)),
        "enableIPForwarding": bool(props.get("enableIPForwarding", False)),
        "resourceGuid": (existing.properties.get("resourceGuid") if existing else None)
        or str(uuid.uuid4()),
    }
    nsg = resolve_ref(call, id_ref(props.get("networkSecurityGroup")), draft.id, NSG)
    if nsg is not None:
        result["networkSecurityGroup"] = {"id": nsg.id}
    if existing is not None and "virtualMachine" in existing.properties:
        result["virtualMachine"] = existing.properties["virtualMachine"]
    return result, {}


def _check_nic_free(world: World, nic: Resource) -> None:
    vm = id_ref(nic.properties.get("virtualMachine"))
    if vm and world.get(vm) is not None:
        raise BadRequest(
            "NicInUse",
            f"Network Interface {nic.id} is used by existing resource {vm}. In order to delete "
            "the network interface, it must be dissociated from the resource.",
        )


def _name_rule(kind: str) -> Any:
    return lambda name, body: check_network_name(name, kind)


def _check_vnet_free(world: World, vnet: Resource) -> None:
    for subnet in world.of_type(SUBNET, vnet.id):
        _check_subnet_free(world, subnet)


KINDS = {
    "virtualNetworks": tracked.Kind(
        VNET, _build_vnet, _name_rule("virtual network"), _check_vnet_free
    ),
    "networkSecurityGroups": tracked.Kind(
        NSG, _build_nsg, _name_rule("network security group"), _check_nsg_free
    ),
    "publicIPAddresses": tracked.Kind(
        PIP, _build_pip, _name_rule("public IP address"), _check_pip_free
    ),
    "networkInterfaces": tracked.Kind(
        NIC, _build_nic, _name_rule("network interface"), _check_nic_free
    ),
}
SUBNET_KIND = tracked.Kind(
    SUBNET, _build_subnet, _name_rule("subnet"), _check_subnet_free, tracked=False
)
KINDS["virtualNetworks"].register(_render_vnet)
KINDS["networkSecurityGroups"].register(_render_nsg)
KINDS["publicIPAddresses"].register(_render_pip)
SUBNET_KIND.register(_render_subnet)

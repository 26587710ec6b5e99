"""Shared by the Microsoft.Network handlers: type names, address prefixes, references."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from .arm_core import Call, id_ref
from .errors import BadRequest
from .world import Resource, World

__all__ = [
    "NIC",
    "NS",
    "NSG",
    "PIP",
    "SUBNET",
    "VNET",
    "ip_configs",
    "parse_prefix",
    "resolve_ref",
    "used_by",
]

NS = "Microsoft.Network"
VNET = f"{NS}/virtualNetworks"
SUBNET = f"{NS}/virtualNetworks/subnets"
NSG = f"{NS}/networkSecurityGroups"
PIP = f"{NS}/publicIPAddresses"
NIC = f"{NS}/networkInterfaces"


def parse_prefix(prefix: Any, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(prefix), strict=True)
    except ValueError:
        raise BadRequest(
            "InvalidAddressPrefixFormat", f"{what} has an invalid address prefix '{prefix}'."
        ) from None


def resolve_ref(call: Call, ref: str | None, referrer: str, type_: str) -> Resource | None:
    """Resolve a ``{"id": ...}`` reference, 400 InvalidResourceReference if missing."""
    if ref is None:
        return None
    target = call.world.get(ref)
    if target is None or target.type.lower() != type_.lower():
        raise BadRequest(
            "InvalidResourceReference",
            f"Resource {ref} referenced by resource {referrer} was not found. Please make sure "
            "that the referenced resource exists, and that both resources are in the same region.",
        )
    return target


def ip_configs(world: World) -> Iterator[tuple[Resource, dict[str, Any]]]:
    for nic in world.of_type(NIC):
        for config in nic.properties.get("ipConfigurations", []):
            yield nic, config


def used_by(world: World, key: str, target_id: str) -> list[str]:
    """Ids of NIC ip configurations whose ``key`` reference points at ``target_id``."""
    return [
        config["id"]
        for _, config in ip_configs(world)
        if (id_ref(config["properties"].get(key)) or "").lower() == target_id.lower()
    ]

"""Delete a virtual machine and what vm/create made for it; prints each resource deleted.

The VM goes first (its OS disk with it), then its network interface, then its public IP,
network security group and virtual network in parallel. Network resources are deleted only
if vm/create made them for this VM (tag `runner-vm`); others are kept and named. The
resource group stays (group/delete removes it). Running it again, or after a failed
vm/create, removes whatever is left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from runner import Context
from runner.azure.naming import ResourceGroupName, VmName
from runner.azure.operations import DELETE, Operations, find, needs_role
from runner.azure.vm_layout import VmLayout

LOCK = "rg:{rg}"
TIMEOUT = 1800


class _Tagged(Protocol):
    id: str | None
    tags: dict[str, str] | None


async def _delete_owned(
    ctx: Context,
    ops: Operations,
    layout: VmLayout,
    what: str,
    get: Callable[[], Awaitable[_Tagged]],
    begin_delete: Callable[[], Awaitable[Any]],
) -> str | None:
    """Delete one resource if vm/create made it for this VM; say why not otherwise."""
    found = await find(get)
    if found is None:
        return None
    if not layout.owns(found.tags):
        ctx.print(f"kept {what}: not made by vm/create for {layout.vm} (no runner-vm tag)")
        return None
    await ops.run(DELETE, what, begin_delete)
    return found.id


async def run(ctx: Context, rg: ResourceGroupName, vmname: VmName) -> None:
    az = await ctx.azure()
    scope = f"/subscriptions/{az.subscription_id}/resourceGroups/{rg}"
    with needs_role(ctx, "Contributor", scope):
        net, vms = az.network, az.compute.virtual_machines
        layout = VmLayout(vmname)
        ops = Operations(ctx)
        deleted: list[str] = []

        vm = await find(lambda: vms.get(rg, vmname))
        if vm is None:
            ctx.print(f"no virtual machine {vmname} in {rg}; looking for what vm/create left")
        else:
            await ops.run(DELETE, f"virtual machine {vmname}", lambda: vms.begin_delete(rg, vmname))
            deleted.append(str(vm.id))
            storage = vm.properties.storage_profile if vm.properties else None
            disk = storage.os_disk if storage else None
            if disk is not None and disk.delete_option == "Delete":
                ctx.print(f"OS disk {disk.name} was deleted with the VM")
            elif disk is not None:
                option = disk.delete_option or "Detach"
                ctx.print(
                    f"kept OS disk {disk.name} (its delete option is {option}); "
                    f"remove it with: az disk delete -g {rg} -n {disk.name}"
                )

        nic = await _delete_owned(
            ctx,
            ops,
            layout,
            f"network interface {layout.nic}",
            lambda: net.network_interfaces.get(rg, layout.nic),
            lambda: net.network_interfaces.begin_delete(rg, layout.nic),
        )
        rest = await ops.parallel(
            _delete_owned(
                ctx,
                ops,
                layout,
                f"public IP address {layout.ip}",
                lambda: net.public_ip_addresses.get(rg, layout.ip),
                lambda: net.public_ip_addresses.begin_delete(rg, layout.ip),
            ),
            _delete_owned(
                ctx,
                ops,
                layout,
                f"network security group {layout.nsg}",
                lambda: net.network_security_groups.get(rg, layout.nsg),
                lambda: net.network_security_groups.begin_delete(rg, layout.nsg),
            ),
            _delete_owned(
                ctx,
                ops,
                layout,
                f"virtual network {layout.vnet}",
                lambda: net.virtual_networks.get(rg, layout.vnet),
                lambda: net.virtual_networks.begin_delete(rg, layout.vnet),
            ),
        )
        deleted += [i for i in (nic, *rest) if i]
        if not deleted:
            ctx.print(f"nothing to delete for {vmname} in {rg}")
            return
        ctx.print(f"deleted {len(deleted)} resource(s) in {ops.elapsed():.1f} s:")
        for resource_id in deleted:
            ctx.print(f"  {resource_id}")
        ctx.print(f"resource group {rg} is kept; group/delete?rg={rg} removes it")

"""Create a virtual machine with what `az vm create` makes around it; prints how to reach it.

Makes, in resource group `rg` (created if missing): a virtual network and subnet, a network
security group allowing SSH (RDP for Windows), a static Standard public IP, a network
interface, and the VM with its OS disk. Independent resources are created in parallel.
Names derive from `vmname` (`vm1-vnet`, `vm1-nsg`, `vm1-ip`, `vm1-nic`, `vm1-osdisk`), so
running it again after a failure finishes the job instead of duplicating it.

Give exactly one of `pw` (admin password, a secret: never stored or shown) or `ssh_key`
(a public key, Linux only). A cancelled or failed run says what it left behind;
vm/delete removes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runner import Context
from runner.azure.images import Image, resolve
from runner.azure.naming import (
    AdminPassword,
    AdminUsername,
    Location,
    ResourceGroupName,
    SshPublicKey,
    VmName,
    VmSize,
)
from runner.azure.operations import CREATE, Operations, find, needs_role
from runner.azure.vm_layout import VmLayout

LOCK = "rg:{rg}"
TIMEOUT = 1800

WINDOWS_NAME_LIMIT = 15


def check(params: dict[str, Any]) -> dict[str, str]:
    """Rules across parameters, checked with the others before the run exists (422)."""
    pw, ssh_key, vmname = params.get("pw"), params.get("ssh_key"), params["vmname"]
    problems: dict[str, str] = {}
    if (pw is None) == (ssh_key is None):
        problems["pw"] = (
            "give exactly one of pw (an admin password) or ssh_key (an SSH public key, "
            f"e.g. the contents of ~/.ssh/id_ed25519.pub); {'both' if pw else 'neither'} given"
        )
    try:
        image = resolve(params["image"])
    except ValueError as exc:
        return {**problems, "image": str(exc)}
    if image.windows:
        if ssh_key is not None:
            problems["ssh_key"] = f"{image} is a Windows image: give pw, not ssh_key"
        if len(vmname) > WINDOWS_NAME_LIMIT:
            problems["vmname"] = (
                f"a Windows VM name is at most {WINDOWS_NAME_LIMIT} characters; "
                f"{vmname!r} has {len(vmname)}"
            )
    return problems


async def run(
    ctx: Context,
    rg: ResourceGroupName,
    vmname: VmName,
    pw: AdminPassword | None = None,
    ssh_key: SshPublicKey | None = None,
    image: Image = "Ubuntu2204",
    size: VmSize = "Standard_B2s",
    location: Location | None = None,
    admin: AdminUsername = "azureuser",
) -> None:
    from azure.mgmt.compute.models import VirtualMachine
    from azure.mgmt.network.models import (
        NetworkInterface,
        NetworkSecurityGroup,
        PublicIPAddress,
        VirtualNetwork,
    )
    from azure.mgmt.resource.resources.models import ResourceGroup

    ref = resolve(image)
    az = await ctx.azure()
    net, compute, groups = az.network, az.compute, az.resources.resource_groups
    layout = VmLayout(vmname)
    port = 3389 if ref.windows else 22
    label = layout.labels(port)

    scope = f"/subscriptions/{az.subscription_id}/resourceGroups/{rg}"
    with needs_role(ctx, "Contributor", scope):
        group = await find(lambda: groups.get(rg))
        where = location or (group.location if group is not None else az.location)
        plan = list(label.values())
        if group is None:
            plan.insert(0, f"resource group {rg}")
        ops = Operations(ctx, plan=plan)
        ctx.print(f"vm/create {vmname} in {rg} ({where}): {ref}, {size}, admin {admin}")
        try:
            if group is None:
                body = ResourceGroup({"location": where})
                group = await ops.call(
                    CREATE, f"resource group {rg}", lambda: groups.create_or_update(rg, body)
                )
            elif group.location != where:
                ctx.print(
                    f"note: resource group {rg} is in {group.location}; the VM goes to {where}"
                )
            vnet, nsg, ip = await ops.parallel(
                ops.run(
                    CREATE,
                    label["vnet"],
                    lambda: net.virtual_networks.begin_create_or_update(
                        rg, layout.vnet, VirtualNetwork(layout.vnet_body(where))
                    ),
                ),
                ops.run(
                    CREATE,
                    label["nsg"],
                    lambda: net.network_security_groups.begin_create_or_update(
                        rg, layout.nsg, NetworkSecurityGroup(layout.nsg_body(where, port))
                    ),
                ),
                ops.run(
                    CREATE,
                    label["ip"],
                    lambda: net.public_ip_addresses.begin_create_or_update(
                        rg, layout.ip, PublicIPAddress(layout.ip_body(where))
                    ),
                ),
            )
            subnet_id = f"{vnet.id}/subnets/{layout.subnet}"
            nic_body = NetworkInterface(layout.nic_body(where, subnet_id, str(nsg.id), str(ip.id)))
            nic = await ops.run(
                CREATE,
                label["nic"],
                lambda: net.network_interfaces.begin_create_or_update(rg, layout.nic, nic_body),
            )
            vm_body = VirtualMachine(
                layout.vm_body(
                    where,
                    size=size,
                    image=ref,
                    admin=admin,
                    nic_id=str(nic.id),
                    password=pw.get_secret_value() if pw is not None else None,
                    ssh_key=ssh_key,
                )
            )
            vm = await ops.run(
                CREATE,
                label["vm"],
                lambda: compute.virtual_machines.begin_create_or_update(rg, vmname, vm_body),
            )
        except asyncio.CancelledError:
            _account(ctx, ops, rg, vmname, f"cancelled after {ops.elapsed():.1f} s")
            raise
        except Exception:
            _account(ctx, ops, rg, vmname, f"stopped by an error after {ops.elapsed():.1f} s")
            raise

    address = ip.properties.ip_address if ip.properties else None
    ctx.print("")
    ctx.print(f"virtual machine {vmname} is ready ({ops.elapsed():.1f} s)")
    rows = [
        ("resource group", group.id),
        ("virtual machine", vm.id),
        ("virtual network", vnet.id),
        ("security group", nsg.id),
        ("public IP", ip.id),
        ("network iface", nic.id),
        ("OS disk", layout.osdisk),
        ("public address", address),
    ]
    for name, value in rows:
        ctx.print(f"  {name:16} {value}")
    if address:
        connect = f"mstsc /v:{address}" if ref.windows else f"ssh {admin}@{address}"
        ctx.print(f"  {'connect':16} {connect}")


def _account(ctx: Context, ops: Operations, rg: str, vmname: str, headline: str) -> None:
    """Say what a run that did not finish left behind, and how to finish or undo it."""
    ctx.print(f"vm/create {headline}")
    for line in ops.left_behind():
        ctx.print(line)
    ctx.print(
        "to finish: run vm/create again with the same parameters (it converges); "
        f"to remove: vm/delete?rg={rg}&vmname={vmname}"
    )

"""Start a virtual machine (from stopped or deallocated) and wait until it runs."""

from __future__ import annotations

from runner import Context
from runner.azure.naming import ResourceGroupName, VmName
from runner.azure.operations import START, Operations, needs_role

LOCK = "rg:{rg}"
TIMEOUT = 900


async def run(ctx: Context, rg: ResourceGroupName, vmname: VmName) -> None:
    az = await ctx.azure()
    scope = f"/subscriptions/{az.subscription_id}/resourceGroups/{rg}"
    with needs_role(ctx, "Virtual Machine Contributor", scope):
        vms = az.compute.virtual_machines
        ops = Operations(ctx)
        await ops.run(START, f"virtual machine {vmname}", lambda: vms.begin_start(rg, vmname))
        view = await vms.instance_view(rg, vmname)
        power = [
            s.display_status for s in view.statuses or [] if (s.code or "").startswith("Power")
        ]
        ctx.print(f"{vmname}: {', '.join(p or '' for p in power) or 'state unknown'}")

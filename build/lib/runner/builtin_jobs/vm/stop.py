"""Stop a virtual machine. By default it is deallocated: compute billing stops, and a
dynamic public IP would be released (vm/create's static one is kept). With
`deallocate=false` it is only powered off and still billed."""

from __future__ import annotations

from runner import Context
from runner.azure.naming import ResourceGroupName, VmName
from runner.azure.operations import DEALLOCATE, POWER_OFF, Operations, needs_role

LOCK = "rg:{rg}"
TIMEOUT = 900


async def run(ctx: Context, rg: ResourceGroupName, vmname: VmName, deallocate: bool = True) -> None:
    az = await ctx.azure()
    scope = f"/subscriptions/{az.subscription_id}/resourceGroups/{rg}"
    with needs_role(ctx, "Virtual Machine Contributor", scope):
        vms = az.compute.virtual_machines
        ops = Operations(ctx)
        what = f"virtual machine {vmname}"
        if deallocate:
            await ops.run(DEALLOCATE, what, lambda: vms.begin_deallocate(rg, vmname))
        else:
            await ops.run(POWER_OFF, what, lambda: vms.begin_power_off(rg, vmname))
        view = await vms.instance_view(rg, vmname)
        power = [
            s.display_status for s in view.statuses or [] if (s.code or "").startswith("Power")
        ]
        ctx.print(f"{vmname}: {', '.join(p or '' for p in power) or 'state unknown'}")
        if not deallocate:
            ctx.print(
                "note: a VM that is only powered off is still billed; deallocate to stop that"
            )

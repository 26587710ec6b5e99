"""Delete a resource group and everything in it; prints each resource deleted.

Deleting a group that does not exist succeeds and says so (running it twice is safe).
"""

from __future__ import annotations

from runner import Context
from runner.azure.naming import ResourceGroupName
from runner.azure.operations import DELETE, Operations, find, needs_role

LOCK = "rg:{rg}"
TIMEOUT = 1800


async def run(ctx: Context, rg: ResourceGroupName) -> None:
    az = await ctx.azure()
    scope = f"/subscriptions/{az.subscription_id}/resourceGroups/{rg}"
    with needs_role(ctx, "Contributor", scope):
        group = await find(lambda: az.resources.resource_groups.get(rg))
        if group is None:
            ctx.print(f"resource group {rg} does not exist; nothing to delete")
            return
        contents = [r async for r in az.resources.resources.list_by_resource_group(rg)]
        contents.sort(key=lambda r: ((r.type or "").lower(), (r.name or "").lower()))
        ctx.print(f"resource group {rg} ({group.location}) holds {len(contents)} resource(s):")
        for r in contents:
            ctx.print(f"  {r.type}  {r.name}")
        ops = Operations(ctx)
        await ops.run(
            DELETE, f"resource group {rg}", lambda: az.resources.resource_groups.begin_delete(rg)
        )
        ctx.print(f"deleted {group.id} and {len(contents)} resource(s) in it")

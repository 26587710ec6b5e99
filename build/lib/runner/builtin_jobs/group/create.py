"""Create a resource group, or update the tags of an existing one.

Location defaults to the runner's (its VM's region, or the `location` setting); tags are
key=value pairs separated by commas. A group cannot move: asking for another location than
the one it has is an error. Without `tags`, an existing group keeps its tags.
"""

from __future__ import annotations

from runner import Context, JobError
from runner.azure.naming import Location, ResourceGroupName, Tags, parse_tags
from runner.azure.operations import find, needs_role

LOCK = "rg:{rg}"
TIMEOUT = 120


async def run(
    ctx: Context,
    rg: ResourceGroupName,
    location: Location | None = None,
    tags: Tags | None = None,
) -> None:
    from azure.mgmt.resource.resources.models import ResourceGroup

    az = await ctx.azure()
    scope = f"/subscriptions/{az.subscription_id}/resourceGroups/{rg}"
    with needs_role(ctx, "Contributor", scope):
        groups = az.resources.resource_groups
        existing = await find(lambda: groups.get(rg))
        if existing is not None and location is not None and existing.location != location:
            raise JobError(
                f"resource group {rg} already exists in {existing.location}, not {location}; "
                "a resource group cannot move (choose another name, or omit location)"
            )
        where = location or (existing.location if existing is not None else az.location)
        wanted = (
            parse_tags(tags) if tags is not None else dict(existing.tags or {}) if existing else {}
        )
        group = await groups.create_or_update(
            rg, ResourceGroup({"location": where, "tags": wanted})
        )
        if existing is None:
            ctx.print(f"created resource group {rg} in {group.location}")
        elif tags is not None:
            ctx.print(f"resource group {rg} exists in {group.location}; tags updated")
        else:
            ctx.print(f"resource group {rg} already exists in {group.location}; nothing to change")
        ctx.print(f"id        {group.id}")
        shown = ", ".join(f"{k}={v}" for k, v in sorted((group.tags or {}).items()))
        ctx.print(f"tags      {shown or '(none)'}")

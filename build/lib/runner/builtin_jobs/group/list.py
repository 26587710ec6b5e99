"""List the resource groups of the subscription: name, location, state and tags."""

from __future__ import annotations

import json
from typing import Any

from runner import Context

TIMEOUT = 120


def _tags(tags: dict[str, str] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items()))


async def run(ctx: Context, as_json: bool = False) -> None:
    az = await ctx.azure()
    groups = [g async for g in az.resources.resource_groups.list()]
    groups.sort(key=lambda g: (g.name or "").lower())
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "name": g.name,
                "location": g.location,
                "state": g.properties.provisioning_state if g.properties else None,
                "tags": dict(g.tags or {}),
                "id": g.id,
            }
            for g in groups
        ]
        ctx.print(json.dumps(rows))
        return
    if not groups:
        ctx.print(f"no resource groups in subscription {az.subscription_id}")
        return
    width = max(len("NAME"), *(len(g.name or "") for g in groups))
    ctx.print(f"{'NAME':{width}}  {'LOCATION':14}  {'STATE':10}  TAGS")
    for g in groups:
        state = (g.properties.provisioning_state if g.properties else None) or ""
        line = f"{g.name or '':{width}}  {g.location:14}  {state:10}  {_tags(g.tags)}"
        ctx.print(line.rstrip())
    ctx.print(f"{len(groups)} resource group(s) in subscription {az.subscription_id}")

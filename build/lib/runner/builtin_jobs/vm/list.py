"""List virtual machines with their size and power state: in one resource group, or all."""

from __future__ import annotations

import asyncio
import json

from runner import Context
from runner.azure.naming import ResourceGroupName

TIMEOUT = 300
# Instance views are one call per VM: a few at a time.
CONCURRENCY = 8


def _group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[4] if len(parts) > 4 else ""


def _size(value: object) -> str | None:
    # The SDK gives known sizes as an enum member; show the ARM string.
    return None if value is None else str(getattr(value, "value", value))


async def run(ctx: Context, rg: ResourceGroupName | None = None, as_json: bool = False) -> None:
    az = await ctx.azure()
    vms_api = az.compute.virtual_machines
    pages = vms_api.list(rg) if rg else vms_api.list_all()
    vms = [vm async for vm in pages]
    vms.sort(key=lambda v: (_group_of(v.id or "").lower(), (v.name or "").lower()))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def power(group: str, name: str) -> str:
        async with gate:
            view = await vms_api.instance_view(group, name)
        codes = [s.code or "" for s in view.statuses or []]
        return next((c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")), "unknown")

    async with asyncio.TaskGroup() as tg:
        states = [tg.create_task(power(_group_of(v.id or ""), v.name or "")) for v in vms]
    rows = [
        {
            "name": vm.name,
            "resource_group": _group_of(vm.id or ""),
            "location": vm.location,
            "size": _size(vm.properties.hardware_profile.vm_size)
            if vm.properties and vm.properties.hardware_profile
            else None,
            "power": state.result(),
            "provisioning": vm.properties.provisioning_state if vm.properties else None,
            "id": vm.id,
        }
        for vm, state in zip(vms, states, strict=True)
    ]
    if as_json:
        ctx.print(json.dumps(rows))
        return
    where = f"resource group {rg}" if rg else f"subscription {az.subscription_id}"
    if not rows:
        ctx.print(f"no virtual machines in {where}")
        return
    heads = ("name", "resource_group", "location", "size", "power", "provisioning")
    widths = {h: max(len(h), *(len(str(r[h] or "")) for r in rows)) for h in heads}
    ctx.print("  ".join(h.replace("_", " ").upper().ljust(widths[h]) for h in heads).rstrip())
    for r in rows:
        ctx.print("  ".join(str(r[h] or "").ljust(widths[h]) for h in heads).rstrip())
    ctx.print(f"{len(rows)} virtual machine(s) in {where}")

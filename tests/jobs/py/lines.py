"""Print N numbered lines, pausing every `every` lines for `pause` seconds."""

from __future__ import annotations

import asyncio

from runner import Context


async def run(ctx: Context, n: int = 10, every: int = 0, pause: float = 0.0) -> None:
    for i in range(1, n + 1):
        ctx.print(f"line {i}")
        if every and i % every == 0:
            await asyncio.sleep(pause)

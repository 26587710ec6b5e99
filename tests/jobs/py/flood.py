"""Print N lines of 100 bytes without ever awaiting (a job that floods)."""

from __future__ import annotations

from runner import Context


async def run(ctx: Context, n: int = 1000, wait: bool = False) -> None:
    line = "x" * 100
    for _ in range(n):
        if wait:
            await ctx.print(line)
        else:
            ctx.print(line)

"""Print N lines of 100 bytes without awaiting between them (a job that floods)."""

from __future__ import annotations

from runner import Context


async def run(ctx: Context, n: int = 1000) -> None:
    line = "x" * 100
    for _ in range(n):
        ctx.print(line)

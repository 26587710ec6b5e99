"""Print ``n`` numbered lines as fast as the journal takes them: for replay figures."""

from __future__ import annotations

from typing import Annotated

from runner import Context, Param

CHUNK = 1000  # lines handed to ctx.print at once


async def run(ctx: Context, n: Annotated[int, Param(ge=1, le=1_000_000)] = 100_000) -> None:
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        ctx.print("\n".join(f"line {i:07d} of a benchmark run" for i in range(start, stop)))

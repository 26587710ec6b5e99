"""Print N lines, each starting with the time it was printed: cross-replica latency."""

from __future__ import annotations

import asyncio
import time

from runner import Context


async def run(ctx: Context, n: int = 100, pause: float = 0.01) -> None:
    for i in range(n):
        ctx.print(f"{time.time():.6f} {i}")
        await asyncio.sleep(pause)

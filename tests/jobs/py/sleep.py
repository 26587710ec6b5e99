"""Sleep, holding the lock of its key: records start and end times as output."""

from __future__ import annotations

import asyncio
import time

from runner import Context

LOCK = "key:{key}"
TIMEOUT = 30


async def run(ctx: Context, seconds: float = 0.5, key: str = "k") -> None:
    ctx.print(f"start {time.monotonic():.6f}")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        ctx.print("cleaning up after cancel")
        raise
    ctx.print(f"end {time.monotonic():.6f}")

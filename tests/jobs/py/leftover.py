"""Leave a task behind that would print, and touch a file, after the run ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runner import Context


async def run(ctx: Context, marker: str) -> int:
    async def late() -> None:
        await asyncio.sleep(0.3)
        ctx.print("late line")
        Path(marker).write_text("the leftover task ran on")  # noqa: ASYNC240 - a test job

    asyncio.get_running_loop().create_task(late())
    return 1

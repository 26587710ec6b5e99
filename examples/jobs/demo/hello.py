"""Say hello a few times, slowly: a sample Python job for trying the runner."""

from __future__ import annotations

import asyncio
from typing import Annotated

from runner import Context, Param


async def run(
    ctx: Context,
    name: Annotated[str, Param(pattern=r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$")] = "world",
    times: Annotated[int, Param(ge=1, le=100)] = 3,
    delay: Annotated[float, Param(ge=0, le=10)] = 0.2,
) -> None:
    for i in range(1, times + 1):
        ctx.print(f"hello, {name} ({i}/{times})")
        ctx.progress(f"said hello {i} of {times} times", 100 * i / times)
        await asyncio.sleep(delay)

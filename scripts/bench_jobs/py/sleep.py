"""Sleep ``seconds`` printing nothing: a long, idle run to hold streams open against."""

from __future__ import annotations

import asyncio
from typing import Annotated

from runner import Context, Param


async def run(ctx: Context, seconds: Annotated[float, Param(gt=0, le=600)] = 60.0) -> None:
    await asyncio.sleep(seconds)

"""Refuse to stop: catch every cancellation and go on (a careless job)."""

from __future__ import annotations

import asyncio

from runner import Context


async def run(ctx: Context) -> None:
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ctx.print("ignoring the cancellation")

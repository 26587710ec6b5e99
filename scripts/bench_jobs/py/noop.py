"""Print one line and succeed: the smallest Python job, for runs-per-second figures."""

from __future__ import annotations

from runner import Context


async def run(ctx: Context) -> None:
    ctx.print("ok")

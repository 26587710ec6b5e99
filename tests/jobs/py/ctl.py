"""Print a line holding terminal escape sequences and a NUL (a hostile job)."""

from __future__ import annotations

from runner import Context


async def run(ctx: Context) -> None:
    ctx.print("\x1b]0;owned\x07\x1b[2Jcleared\x00end\ttab")
    ctx.error("\x1b[31mred error")

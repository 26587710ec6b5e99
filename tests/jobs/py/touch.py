"""Touch a file: a side effect, to see when a job really starts."""

from __future__ import annotations

from pathlib import Path

from runner import Context


async def run(ctx: Context, path: str) -> None:
    Path(path).write_text("touched")  # noqa: ASYNC240 - a test job's tiny write
    ctx.print("touched")

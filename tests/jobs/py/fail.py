"""Fail: with a JobError (clean message) or an unexpected exception (traceback)."""

from __future__ import annotations

from typing import Literal

from runner import Context, JobError


async def run(ctx: Context, how: Literal["joberror", "crash", "code"] = "joberror") -> int:
    ctx.print("about to fail")
    if how == "joberror":
        raise JobError("the deployment target refused the change", exit_code=3)
    if how == "code":
        return 7
    raise ValueError("something unexpected")

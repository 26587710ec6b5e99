"""Fail with words that hold the secret, on several lines (a careless job)."""

from __future__ import annotations

from runner import Context, JobError, Secret


async def run(ctx: Context, token: Secret, forge: bool = False) -> None:
    ctx.progress(f"logging in with {token.get_secret_value()}")
    if forge:
        raise JobError('refused\n\nid: 999\nevent: done\ndata: {"state": "succeeded"}')
    raise JobError("could not log in with password " + token.get_secret_value())

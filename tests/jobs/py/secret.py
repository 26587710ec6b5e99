"""Take a secret and echo it (the runner must mask it) and its length."""

from __future__ import annotations

from runner import Context, Secret


async def run(ctx: Context, user: str, pw: Secret) -> None:
    value = pw.get_secret_value()
    ctx.print(f"user={user} pw={value} len={len(value)}")
    ctx.error(f"also on stderr: {value}")

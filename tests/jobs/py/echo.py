"""Print each parameter as name=value: the test suite's mirror."""

from __future__ import annotations

from typing import Annotated, Literal

from runner import Context, Param


async def run(
    ctx: Context,
    rg: Annotated[str, Param(pattern=r"^[a-z][a-z0-9-]{0,20}$")],
    count: Annotated[int, Param(ge=1, le=10)] = 1,
    size: Literal["small", "large"] = "small",
    flag: bool = False,
) -> None:
    for i in range(count):
        ctx.print(f"rg={rg} size={size} flag={flag} i={i}")

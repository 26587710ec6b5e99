"""A job with one parameter of every kind, quick to run: the fuzzer's target."""

from __future__ import annotations

from typing import Annotated, Literal

from runner import Context, Param, Secret


async def run(
    ctx: Context,
    name: Annotated[str, Param(pattern=r"^[a-z][a-z0-9-]{0,30}$")],
    count: Annotated[int, Param(ge=0, le=5)] = 1,
    ratio: Annotated[float, Param(ge=0, le=1)] = 0.5,
    size: Literal["s", "m", "l"] = "s",
    flag: bool = False,
    note: Annotated[str, Param(max_length=200)] = "",
    pw: Secret | None = None,
) -> int:
    for i in range(count):
        ctx.print(f"{name} {i} {ratio} {size} {flag} {note!r}")
    return 0 if flag or count < 5 else 3

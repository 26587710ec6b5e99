"""The process of a script job: started, followed, awaited and, on timeout or cancel, ended.

A shepherd process (:mod:`runner.kinds.spawner`) starts the script in its own session,
reads its stdout and stderr in the order they come and sends them here as lines, and ends
every process the script started — those that left its process group too — when the run
ends, times out or is cancelled: SIGTERM, then SIGKILL after a grace period.

A line comes at most 20 ms after the script wrote it (the shepherd's HOLD), or with the end
of the run: a short script's output is emitted in the same step as its ``done``, so that
they share one stored batch and one write to each follower (issue 13).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.kinds.spawner import Lines, Script, Spawner
from runner.records import EV_ERROR, EV_OUTPUT

LEFT_BEHIND = "runner: the script left processes holding its output; killed them"

Emit = Callable[[str, str], None]


async def run_script(
    file: Path,
    *,
    env: dict[str, str],
    body: bytes,
    emit: Emit,
    kill_grace: float,
    spawner: Spawner,
    limits: Sequence[tuple[int, int]] = (),
) -> int:
    """Run ``file`` in its folder; return its exit code (128+N for death by signal N).

    Cancelling the awaiting task terminates every process of the run (SIGTERM, then
    SIGKILL after ``kill_grace``) before the cancellation propagates. Raises OSError if the
    script cannot start, JobError if its shepherd dies under it.
    """
    args = [str(file)]
    if body:
        args.append(body.decode("utf-8", "replace"))

    def lines(batch: list[Lines]) -> None:
        for err, block in batch:
            kind = EV_ERROR if err else EV_OUTPUT
            for line in block.split(b"\n"):
                emit(kind, line.decode("utf-8", "replace"))

    script = spawner.spawn(args, env, str(file.parent), limits, lines)
    try:
        await script.ended()
    except asyncio.CancelledError:
        await asyncio.shield(_terminate(script, kill_grace))
        lines(script.lines)
        raise
    lines(script.lines)
    if script.left_behind:
        emit(EV_ERROR, LEFT_BEHIND)
    if script.error is not None:
        raise script.error
    assert script.code is not None
    return script.code if script.code >= 0 else 128 - script.code


async def _terminate(script: Script, grace: float) -> None:
    """SIGTERM, ``grace`` seconds, SIGKILL; back once nothing of the run is left."""
    script.terminate()
    try:
        await asyncio.wait_for(script.ended(), grace)
    except TimeoutError:
        script.kill()
        await script.ended()

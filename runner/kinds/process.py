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
import codecs
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.kinds.spawner import Lines, Script, Spawner
from runner.records import EV_ERROR, EV_OUTPUT

LEFT_BEHIND = "runner: the script left processes holding its output; killed them"

# (kind, text, continued): continued text is a piece of a line the next one finishes.
Emit = Callable[[str, str, bool], None]
KINDS = (EV_OUTPUT, EV_ERROR)
STDERR, CONTINUED = 1, 2  # a block's flags (runner.kinds.shepherd.herd)


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

    # A long line comes in pieces: decoded as one text (a character cut in two is not
    # two replacement characters), and each piece marked as continued, so that a secret
    # across a cut is still masked (the emitter holds back what could begin one).
    decoders = {kind: codecs.getincrementaldecoder("utf-8")("replace") for kind in KINDS}

    def lines(batch: list[Lines]) -> None:
        for flags, block in batch:
            kind = EV_ERROR if flags & STDERR else EV_OUTPUT
            decoder = decoders[kind]
            if flags & CONTINUED:
                emit(kind, decoder.decode(block), True)
                continue
            first, *rest = block.split(b"\n")
            emit(kind, decoder.decode(first, final=True), False)
            for line in rest:
                emit(kind, line.decode("utf-8", "replace"), False)

    script = spawner.spawn(args, env, str(file.parent), limits, lines)
    try:
        await script.ended()
    except asyncio.CancelledError:
        await asyncio.shield(_terminate(script, kill_grace))
        lines(script.lines)
        raise
    lines(script.lines)
    if script.left_behind:
        emit(EV_ERROR, LEFT_BEHIND, False)
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

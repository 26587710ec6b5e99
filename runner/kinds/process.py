"""The process of a script job: started, read, awaited and, on timeout or cancel, ended.

A shepherd process starts it (:mod:`runner.kinds.spawner`) in its own session, and ends
every process it started — those that left its process group too — when the run ends, times
out or is cancelled: SIGTERM, then SIGKILL after a grace period. stdout and stderr come
straight to this process and are read concurrently, so lines keep the order in which they
were written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from runner.kinds.spawner import Script, Spawner
from runner.output import MAX_LINE
from runner.records import EV_ERROR, EV_OUTPUT

# How long to wait for pipes to close after the script exits (children may hold them).
PIPE_GRACE = 2.0


async def _read_chunks(fd: int) -> AsyncIterator[bytes]:
    """Chunks from a pipe as they arrive, read straight off the loop's readiness events.

    Not ``loop.connect_read_pipe``: uvloop closes such a pipe's fd twice (libuv, then the
    file object), which can close a newer pipe that reused the number under load.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return
            yield chunk
    finally:
        loop.remove_reader(fd)


async def _pump(fd: int, kind: str, emit: Callable[[str, str], None]) -> None:
    """Emit complete lines as they arrive; a last line without newline counts too."""
    pending = b""
    async for chunk in _read_chunks(fd):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            emit(kind, line.removesuffix(b"\r").decode("utf-8", "replace"))
        while len(pending) > MAX_LINE:
            emit(kind, pending[:MAX_LINE].decode("utf-8", "replace"))
            pending = pending[MAX_LINE:]
    if pending:
        emit(kind, pending.removesuffix(b"\r").decode("utf-8", "replace"))


async def run_script(
    file: Path,
    *,
    env: dict[str, str],
    body: bytes,
    emit: Callable[[str, str], None],
    kill_grace: float,
    spawner: Spawner,
    limits: Sequence[tuple[int, int]] = (),
) -> int:
    """Run ``file`` in its folder; return its exit code (128+N for death by signal N).

    Cancelling the awaiting task terminates every process of the run (SIGTERM, then
    SIGKILL after ``kill_grace``) before the cancellation propagates. Whatever the script
    leaves behind when it exits is killed once its output is read (or after PIPE_GRACE).
    """
    args = [str(file)]
    if body:
        args.append(body.decode("utf-8", "replace"))
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        script = spawner.spawn(args, env, str(file.parent), limits, (out_w, err_w))
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        # The script holds the write ends now: EOF comes when the last of its processes
        # that has them exits.
        os.close(out_w)
        os.close(err_w)
    readers = asyncio.gather(_pump(out_r, EV_OUTPUT, emit), _pump(err_r, EV_ERROR, emit))
    try:
        code = await script.wait()
        try:
            # Background children may keep the pipes open; do not wait on them forever.
            await asyncio.wait_for(asyncio.shield(readers), PIPE_GRACE)
        except TimeoutError:
            emit(EV_ERROR, "runner: the script left processes holding its output; killed them")
            script.kill()
            await readers
    except asyncio.CancelledError:
        # Also when cancelled before the script started: no process is ever left behind.
        await asyncio.shield(_terminate(script, kill_grace))
        raise
    except Exception:
        # Its shepherd died (the spawner ends what it left) or it never started: keep
        # what it wrote until then.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(readers), PIPE_GRACE)
        raise
    finally:
        # Whatever the script started must not outlive the run.
        script.release()
        if not readers.done():
            readers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readers
        os.close(out_r)
        os.close(err_r)
    return code if code >= 0 else 128 - code


async def _terminate(script: Script, grace: float) -> None:
    script.terminate()
    with contextlib.suppress(Exception):
        try:
            await asyncio.wait_for(script.wait(), grace)
        except TimeoutError:
            script.kill()
            await script.wait()

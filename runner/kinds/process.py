"""The process of a script job: started, read, awaited and, on timeout or cancel, ended.

A shepherd process starts it (:mod:`runner.kinds.spawner`) in its own session, and ends
every process it started — those that left its process group too — when the run ends, times
out or is cancelled: SIGTERM, then SIGKILL after a grace period. stdout and stderr come
straight to this process and are read as the loop reports them readable, so lines keep the
order in which they were written.

The reading is callbacks on the loop, not tasks: a short run costs one future, which is
resolved once the script's exit is known and both pipes are at EOF. Lines are handed on at
most HOLD seconds after they arrive, or with the exit if it comes first: a short script's
output then shares one stored batch and one write to each follower with its `done`, and a
chatty one's lines go out in a few dozen batches a second, not one per line (issue 13).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.kinds.spawner import Script, Spawner
from runner.output import MAX_LINE
from runner.records import EV_ERROR, EV_OUTPUT

# How long to wait for pipes to close after the script exits (children may hold them).
PIPE_GRACE = 2.0
# How long a line may wait to be handed on with the lines (or the exit) that follow it.
HOLD = 0.02
LEFT_BEHIND = "runner: the script left processes holding its output; killed them"

Emit = Callable[[str, str], None]


class _Pipe:
    """One pipe read on the loop's readiness events; complete lines are emitted as they come.

    Not ``loop.connect_read_pipe``: uvloop closes such a pipe's fd twice (libuv, then the
    file object), which can close a newer pipe that reused the number under load.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        kind: str,
        emit: Emit,
        eof: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.fd = fd
        self.kind = kind
        self.emit = emit
        self.eof = eof
        self.open = True
        self.pending = b""
        # A fresh pipe's read end has no other status flag to keep.
        fcntl.fcntl(fd, fcntl.F_SETFL, os.O_NONBLOCK)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.close()
            self.eof()
            return
        pending = self.pending + chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            self.emit(self.kind, line.removesuffix(b"\r").decode("utf-8", "replace"))
        while len(pending) > MAX_LINE:
            self.emit(self.kind, pending[:MAX_LINE].decode("utf-8", "replace"))
            pending = pending[MAX_LINE:]
        self.pending = pending

    def close(self) -> None:
        """Stop reading; a last line without newline still counts."""
        if self.open:
            self.open = False
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            if self.pending:
                self.emit(self.kind, self.pending.removesuffix(b"\r").decode("utf-8", "replace"))
                self.pending = b""


class _Watch:
    """Resolves ``finished`` once the exit is known and both pipes are at EOF; kills what
    still holds the pipes PIPE_GRACE seconds after the exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, script: Script, emit: Emit) -> None:
        self.loop = loop
        self.script = script
        self.emit = emit
        self.finished: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        self.pipes: list[_Pipe] = []
        self.held: list[tuple[str, str]] = []
        self.holding: asyncio.TimerHandle | None = None

    def hold(self, kind: str, line: str) -> None:
        """Keep a line (in the order lines came on both pipes) for at most HOLD seconds."""
        self.held.append((kind, line))
        if self.holding is None:
            self.holding = self.loop.call_later(HOLD, self.flush)

    def flush(self) -> None:
        if self.holding is not None:
            self.holding.cancel()
            self.holding = None
        held, self.held = self.held, []
        for kind, line in held:
            self.emit(kind, line)

    def check(self) -> None:
        open_pipes = any(p.open for p in self.pipes)
        if not open_pipes and not self.drained.done():
            self.drained.set_result(None)
        if self.finished.done():
            return
        if self.script.error is not None or (self.script.code is not None and not open_pipes):
            # The held lines go out from the run's task, in the same step as its `done`.
            self.finished.set_result(None)
        elif self.script.code is not None and self.timer is None:
            # Background children may keep the pipes open; do not wait on them forever.
            self.timer = self.loop.call_later(PIPE_GRACE, self.left_behind)

    def left_behind(self) -> None:
        self.hold(EV_ERROR, LEFT_BEHIND)
        self.script.kill()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for pipe in self.pipes:
            pipe.close()
        self.flush()


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
    SIGKILL after ``kill_grace``) before the cancellation propagates. Whatever the script
    leaves behind when it exits is killed once its output is read (or after PIPE_GRACE).
    Raises OSError if it cannot start, JobError if its shepherd dies under it.
    """
    args = [str(file)]
    if body:
        args.append(body.decode("utf-8", "replace"))
    loop = asyncio.get_running_loop()
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
    watch = _Watch(loop, script, emit)
    watch.pipes = [_Pipe(loop, out_r, EV_OUTPUT, watch.hold, watch.check)]
    watch.pipes.append(_Pipe(loop, err_r, EV_ERROR, watch.hold, watch.check))
    script.on_exit = watch.check
    try:
        await watch.finished
        watch.flush()
        if script.error is not None:
            # Its shepherd died (the spawner ends what it left) or it never started: keep
            # what it wrote until then.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.drained, PIPE_GRACE)
            raise script.error
    except asyncio.CancelledError:
        # Also when cancelled before the script started: no process is ever left behind.
        await asyncio.shield(_terminate(script, kill_grace))
        raise
    finally:
        # Whatever the script started must not outlive the run.
        script.release()
        watch.close()
    assert script.code is not None
    return script.code if script.code >= 0 else 128 - script.code


async def _terminate(script: Script, grace: float) -> None:
    script.terminate()
    try:
        await asyncio.wait_for(script.exited(), grace)
    except TimeoutError:
        script.kill()
        await script.exited()

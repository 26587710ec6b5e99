"""The process of a script job: started, read, awaited and, on timeout or cancel, ended.

Each script runs in its own session (process group) so that a timeout or a cancel reaches
every process it started: SIGTERM to the group, then SIGKILL after a grace period.
stdout and stderr are read concurrently, so lines keep the order in which they were written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

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


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class _Child:
    """A script process started with ``subprocess.Popen`` and awaited through a pidfd.

    Why not ``asyncio.create_subprocess_exec``: under uvloop that forks the whole server
    (4-10 ms per run for a 60 MB process); Popen uses vfork + exec (under 1 ms). The exit
    is watched with a pidfd on the loop, so no child-watcher thread is involved.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._code: int | None = None

    async def wait(self) -> int:
        if self._code is None:
            pidfd_open = getattr(os, "pidfd_open", None)
            if pidfd_open is None:  # pragma: no cover - Linux < 5.3 or not Linux
                while self.popen.poll() is None:  # noqa: ASYNC110 - nothing to wait on
                    await asyncio.sleep(0.01)
            else:
                loop = asyncio.get_running_loop()
                fd = pidfd_open(self.pid)
                try:
                    exited: asyncio.Future[None] = loop.create_future()

                    def readable() -> None:
                        if not exited.done():
                            exited.set_result(None)

                    loop.add_reader(fd, readable)
                    try:
                        await exited
                    finally:
                        loop.remove_reader(fd)
                finally:
                    os.close(fd)
            self._code = self.popen.wait()
        return self._code


async def run_script(
    file: Path,
    *,
    env: dict[str, str],
    body: bytes,
    emit: Callable[[str, str], None],
    kill_grace: float,
) -> int:
    """Run ``file``; return its exit code (128+N for death by signal N).

    Cancelling the awaiting task terminates the process group (SIGTERM, then SIGKILL
    after ``kill_grace``) before the cancellation propagates.
    """
    args = [str(file)]
    if body:
        args.append(body.decode("utf-8", "replace"))
    popen = subprocess.Popen(  # noqa: ASYNC220 - vfork+exec: cheaper than the loop's spawn
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=file.parent,
        start_new_session=True,
    )
    proc = _Child(popen)
    if popen.stdout is None or popen.stderr is None:  # pragma: no cover - PIPE was asked
        raise RuntimeError("script pipes missing")
    readers: asyncio.Future[Any] | None = None
    try:
        readers = asyncio.gather(
            _pump(popen.stdout.fileno(), EV_OUTPUT, emit),
            _pump(popen.stderr.fileno(), EV_ERROR, emit),
        )
        code = await proc.wait()
        try:
            # Background children may keep the pipes open; do not wait on them forever.
            await asyncio.wait_for(asyncio.shield(readers), PIPE_GRACE)
        except TimeoutError:
            emit(EV_ERROR, "runner: the script left processes holding its output; killed them")
            _signal_group(proc.pid, signal.SIGKILL)
            await readers
    except asyncio.CancelledError:
        # Also when cancelled before the readers existed: the process is never left behind.
        await asyncio.shield(_terminate(proc, kill_grace))
        if readers is not None:
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readers
        raise
    finally:
        # Whatever the script started in its group must not outlive the run.
        _signal_group(proc.pid, signal.SIGKILL)
        popen.stdout.close()
        popen.stderr.close()
    return code if code >= 0 else 128 - code


async def _terminate(proc: _Child, grace: float) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
    # The leader is gone; make sure the rest of its group is too.
    _signal_group(proc.pid, signal.SIGKILL)

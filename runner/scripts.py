"""Script jobs, webhookd style: parameters as environment variables, the body as ``$1``.

Each script runs in its own session (process group) so that a timeout or a cancel reaches
every process it started: SIGTERM to the group, then SIGKILL after a grace period.
stdout and stderr are read concurrently, so lines keep the order in which they were written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from runner.context import MAX_LINE
from runner.errors import ParameterProblem
from runner.params import PARAM_NAME
from runner.records import EV_ERROR, EV_OUTPUT

# The environment a script starts from: enough to run, nothing of the runner's own secrets.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL")
# Lower-case names that programs honour anyway (curl, wget, pip read lower-case proxies).
HONOURED = frozenset(("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy"))
# How long to wait for pipes to close after the script exits (children may hold them).
PIPE_GRACE = 2.0


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: environ[k] for k in BASE_ENV if k in environ}


def check_names(names: list[str], env: Mapping[str, str]) -> list[ParameterProblem]:
    """Refuse parameter names that would shadow the script's environment.

    Parameter names are already lower-case ``[a-z_][a-z0-9_]*``, which rules out PATH,
    LD_PRELOAD, BASH_ENV and the like; what is left to refuse is a name equal (ignoring
    case) to a variable the script gets from the runner, and lower-case names that
    programs honour.
    """
    taken = {k.lower() for k in env}
    problems = []
    for name in names:
        if not PARAM_NAME.match(name):
            continue  # already reported as a bad name
        if name in HONOURED or name.lower() in taken or name.startswith("runner_"):
            problems.append(
                ParameterProblem(name, "this name is reserved: it would shadow the environment")
            )
    return problems


async def _pump(stream: asyncio.StreamReader, kind: str, emit: Callable[[str, str], None]) -> None:
    """Emit complete lines as they arrive; a last line without newline counts too."""
    pending = b""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
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
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=file.parent,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(
        _pump(proc.stdout, EV_OUTPUT, emit), _pump(proc.stderr, EV_ERROR, emit)
    )
    try:
        code = await proc.wait()
        try:
            # Background children may keep the pipes open; do not wait on them forever.
            await asyncio.wait_for(asyncio.shield(readers), PIPE_GRACE)
        except TimeoutError:
            emit(EV_ERROR, "runner: the script left processes holding its output; killed them")
            _signal_group(proc.pid, signal.SIGKILL)
            await readers
    except asyncio.CancelledError:
        await asyncio.shield(_terminate(proc, kill_grace))
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readers
        raise
    finally:
        # Whatever the script started in its group must not outlive the run.
        _signal_group(proc.pid, signal.SIGKILL)
    return code if code >= 0 else 128 - code


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
    # The leader is gone; make sure the rest of its group is too.
    _signal_group(proc.pid, signal.SIGKILL)

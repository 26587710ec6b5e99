"""The asyncio spawn ceiling: how many scripts one event loop can run per second on its own,
with no HTTP, no store and no journal — the reference an event-loop-bound design can reach
at best (issue 13).

Each of ``concurrency`` tasks runs the script again as soon as it ended, the fastest way an
asyncio process knows: ``subprocess.Popen`` (vfork + exec) on the loop, in its own session,
in the script's folder, with a minimal environment; stdout and stderr read off the loop's
readiness events to EOF; the exit awaited through a pidfd. It runs in a worker process
(``bench.py --worker``) on uvloop when installed, as the server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _drain(fd: int) -> None:
    os.set_blocking(fd, False)
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except BlockingIOError:
            await _readable(fd)


async def _run_once(script: Path, env: dict[str, str]) -> int:
    popen = subprocess.Popen(  # noqa: ASYNC220 - the ceiling is exactly this
        [str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=script.parent,
        start_new_session=True,
    )
    assert popen.stdout is not None and popen.stderr is not None
    pidfd = os.pidfd_open(popen.pid)
    try:
        await asyncio.gather(
            _drain(popen.stdout.fileno()), _drain(popen.stderr.fileno()), _readable(pidfd)
        )
    finally:
        os.close(pidfd)
        popen.stdout.close()
        popen.stderr.close()
    return popen.wait()


async def spawn_ceiling(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs per second of ``spec["script"]`` at ``spec["concurrency"]``."""
    script = Path(spec["script"])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    clock = time.perf_counter
    start = clock() + spec["warmup"]
    stop = start + spec["seconds"]
    counts = {"done": 0, "errors": 0}

    async def worker() -> None:
        while clock() < stop:
            t0 = clock()
            code = await _run_once(script, env)
            if t0 >= start:
                counts["done"] += 1
                counts["errors"] += code != 0

    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    elapsed = clock() - start
    return {
        "requests": counts["done"],
        "errors": counts["errors"],
        "seconds": elapsed,
        "rps": counts["done"] / elapsed if elapsed > 0 else 0.0,
    }


def ceiling_main(spec: dict[str, Any]) -> dict[str, Any]:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(spawn_ceiling(spec))

"""One server per state dir: an exclusive ``flock`` on ``<state dir>/server.lock``.

A second ``runner serve`` on a state dir would take over the first one's runs and run its
lock keys at the same time (issue 15, item 3), so it is refused with the holder named.
``runner run`` in a terminal takes it only for a job with a lock key (lock keys are handed
out by one process per state dir): it recovers nothing, and runs any other job beside a
server.

The server's script spawner and shepherds keep the lock's file open (an inherited fd), so
after a kill -9 of the server the lock is free only once the scripts it ran are gone: the
next server cannot give their lock keys away while they still run. A server that finds the
lock held by what a dead server left waits for it, a bounded time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

from runner import lease
from runner.errors import ConfigError

log = logging.getLogger("runner.runtime")

LOCK_FILE = "server.lock"


class StateLock:
    """This process's hold on a state dir; :meth:`release` gives it back."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def claim(cls, state_dir: Path, owner: str, wait: float) -> StateLock:
        """Take the lock for ``owner`` (a :mod:`runner.lease` owner id). ConfigError if a
        live server holds it, or if a dead one's scripts still hold it after ``wait`` s."""
        path = state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _acquire(fd, path, wait)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Close this process's fd; the lock is free once its spawner has closed its own."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _acquire(fd: int, path: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        pid = holder.rsplit(":", 3)[1] if holder.count(":") >= 3 else "?"
        if lease.alive(holder):
            raise ConfigError(
                f"another runner process (pid {pid}) serves the state dir {path.parent}: "
                "stop it first, or give this one its own --state-dir"
            )
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"the scripts of a runner server that stopped (pid {pid}) still hold "
                f"{path}; they end within kill_grace seconds: if they do not, find them with "
                f"`fuser -v {path}`"
            )
        if not told:
            log.warning("waiting for the scripts of a stopped runner server (pid %s) to end", pid)
            told = True
        time.sleep(0.05)

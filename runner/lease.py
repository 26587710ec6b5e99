"""Leases on runs: which executor holds a run, and whether that holder is still alive.

A run records the lease of the executor that queues or runs it (``RunRecord.owner``).
Several processes may share one state dir: a server and `runner run` in a terminal. At
start a server marks `interrupted` only the runs whose owner is gone — never a run that a
live process on this host is still running. An owner is ``host:pid:start-time:n``: the
start time (from /proc) tells a live owner from a new process that reused its pid, and
``n`` tells apart executors of one process (tests start many servers in one process).
The lease lasts as long as its process: liveness is read from /proc, so no heartbeat is
needed on one host (replicas on a shared database need one, with a timeout).
"""

from __future__ import annotations

import functools
import itertools
import os
import socket

_counter = itertools.count(1)
_live: set[str] = set()  # owners of this process whose executors are running


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None if it is gone — or
    dead but not yet reaped (a zombie, state Z, or X): it holds no run any more."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # Fields counted after the command name, which may hold spaces and parens.
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


@functools.cache
def _process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def claim() -> str:
    """A new owner id for an executor of this process, live until :func:`release`."""
    owner = f"{_process()}:{next(_counter)}"
    _live.add(owner)
    return owner


def release(owner: str) -> None:
    _live.discard(owner)


def alive(owner: str) -> bool:
    """True when ``owner``'s executor still runs: in this process, or in a live one here."""
    try:
        process, _ = owner.rsplit(":", 1)
        host, pid, started = process.rsplit(":", 2)
    except ValueError:
        return False
    if process == _process():
        return owner in _live
    if host != socket.gethostname() or not pid.isdigit():
        # SQLite state is one host's; a foreign owner cannot be checked, and cannot be live.
        return False
    return started != "?" and _start_time(int(pid)) == started

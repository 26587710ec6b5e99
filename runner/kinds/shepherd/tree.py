"""Process trees under a subreaper: finding, signalling and reaping every descendant."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants of this process are reparented to it, not to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def children_of(pid: int) -> list[int]:
    """The children of ``pid`` (orphans reparented to it included), from /proc."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                found.extend(int(p) for p in fh.read().split())
        except OSError:
            continue
    return found


def descendants_of(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    found: list[int] = []
    todo = children_of(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children_of(child))
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def reap_any() -> tuple[int, int] | None:
    """One child that ended (pid, status); None if none has; ChildProcessError if no
    child is left."""
    pid, status = os.waitpid(-1, os.WNOHANG)
    return (pid, status) if pid else None


class Wakeups:
    """SIGCHLD as a readable fd, so that one ``poll`` waits for messages, output and exits."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def drain(self) -> None:
        # One read: if more is pending, the next poll says so.
        with contextlib.suppress(BlockingIOError):
            os.read(self.read_fd, 512)

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self.read_fd)
        os.close(self.write_fd)


# One buffer for every message: a request holds a script's arguments and environment, which
# together cannot pass the kernel's ARG_MAX (2 MiB by default) anyway.
_BUFFER = bytearray(4 << 20)


def receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One whole message and the fds it carries (closed on exec); ``b""`` at EOF."""
    size, ancdata, _, _ = sock.recvmsg_into(
        [_BUFFER], socket.CMSG_SPACE(16), socket.MSG_CMSG_CLOEXEC
    )
    # A cut message (MSG_TRUNC) fails to unmarshal: the sender hears why.
    data = bytes(memoryview(_BUFFER)[:size])
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(
                int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)
            )
    return data, fds

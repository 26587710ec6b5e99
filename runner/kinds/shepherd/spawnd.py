"""The spawner process: forks a shepherd for each socket its server sends, reaps them, ends
the orphans of a shepherd that died and, once the server is gone, waits (a bounded time)
for the shepherds to end their runs before it exits itself."""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
import traceback

from .herd import Shepherd
from .tree import Wakeups, become_subreaper, children_of, descendants_of, receive, signal_all


class Spawner:
    """The loop of the spawner process (see the module docstring)."""

    def __init__(self, control: socket.socket, grace: float) -> None:
        self.control: socket.socket | None = control
        self.grace = grace
        self.shepherds: set[int] = set()
        self.deadline = 0.0
        become_subreaper()
        self.wake = Wakeups()

    def serve(self) -> None:
        while self.control is not None or children_of(os.getpid()):
            fds = [self.wake.read_fd] + ([self.control.fileno()] if self.control else [])
            timeout = None if self.control else max(0.0, self.deadline - time.monotonic())
            ready = select.select(fds, [], [], timeout)[0]
            if self.control is not None and self.control.fileno() in ready:
                self.on_control()
            if self.wake.read_fd in ready:
                self.wake.drain()
            self.reap()
            if self.control is None and time.monotonic() >= self.deadline:
                # Shepherds that outstay their grace are ended; their scripts come to us.
                signal_all(list(self.shepherds), signal.SIGKILL)
                self.deadline = time.monotonic() + 1.0

    def on_control(self) -> None:
        assert self.control is not None
        data, fds = receive(self.control)
        if not data:  # the server is gone: each shepherd has seen its own EOF too
            self.control.close()
            self.control = None
            self.deadline = time.monotonic() + self.grace + 5.0
        for fd in fds:
            if data[:1] == b"N":
                self.fork_shepherd(fd)
            os.close(fd)

    def fork_shepherd(self, fd: int) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the shepherd
            code = 0
            try:
                assert self.control is not None
                self.control.close()
                self.wake.close()
                Shepherd(socket.socket(fileno=fd)).serve()
            except BaseException:
                traceback.print_exc()
                code = 70
            finally:
                os._exit(code)
        self.shepherds.add(pid)

    def reap(self) -> None:
        """Reap what ended; SIGKILL whatever is ours but no shepherd: a dead shepherd's."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.shepherds.discard(pid)
        for pid in children_of(os.getpid()):
            if pid not in self.shepherds:
                signal_all([pid, *descendants_of(pid)], signal.SIGKILL)


def main(argv: list[str]) -> int:
    """``CONTROL_FD LOCK_FD|- GRACE``: serve the control socket until the server is gone."""
    control_fd, lock_fd, grace = argv
    # Inherited on purpose; closed on exec so that no script gets them.
    os.set_inheritable(int(control_fd), False)
    if lock_fd != "-":
        os.set_inheritable(int(lock_fd), False)
    Spawner(socket.socket(fileno=int(control_fd)), float(grace)).serve()
    return 0


if __name__ == "__main__":  # pragma: no cover - run by runner.kinds.spawner
    sys.exit(main(sys.argv[1:]))

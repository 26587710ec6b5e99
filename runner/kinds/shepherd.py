"""The spawner and its shepherds: the processes that start script jobs, off the server's loop.

    server ──control socket──► spawner        a subreaper: forks shepherds, ends the orphans
      │                          ├─► shepherd   of a shepherd that died
      └── a socket each ────────►└─► shepherd   a subreaper too: one run at a time, reused
                                        └─► script (its own session) ─► whatever it starts

Why processes: spawning from the server's event loop stalls the loop while each child execs
and keeps all the work on one core (issue 13); a shepherd waiting for its request spawns
at once, on the other core. Why a subreaper per run: every process a script starts, even one
that leaves its process group (``setsid … &``), stays a descendant of that run's shepherd,
so the run's end, timeout or cancel reaches all of them, and after a kill -9 of the server
the shepherd still ends them (issue 15, items 3 and 8). The pipes go from the script
straight to the server, which reads them itself: its lines keep their order.

Run as a file, ``python -I -S shepherd.py CONTROL_FD LOCK_FD|- GRACE``, so that it imports
the standard library only and starts in a few milliseconds. The lock fd (the server's hold
on its state dir) is kept open by the spawner and every shepherd until their scripts are
gone, so no new server takes over the state dir while an old script still runs.

Protocol: one message per datagram (SOCK_SEQPACKET), the first byte says what it is.

    server → spawner    N + [socket]       fork a shepherd serving that socket
    server → shepherd   R + marshal((argv, env, cwd, limits, grace)) + [stdout, stderr]
                        T  SIGTERM the run's processes     K  SIGKILL them, then answer C
                        Q  quit (sent only when idle)      EOF: the server is gone
    shepherd → server   F<errno> <text> could not start (idle again)
                        X<code> the script exited, some of its processes remain
                        Y<code> the script exited and nothing of it remains (idle again)
                        C  every process of the run is gone (idle again)
"""

from __future__ import annotations

import contextlib
import ctypes
import marshal
import os
import select
import signal
import socket
import sys
import time
import traceback

PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> None:
    """Orphaned descendants of this process are reparented to it, not to init."""
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
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
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


class Wakeups:
    """SIGCHLD as a readable fd, so one ``poll`` waits for messages and exits alike."""

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
        os.close(self.read_fd)
        os.close(self.write_fd)


# One buffer for every message: a request holds the script's arguments and environment,
# which together cannot pass the kernel's ARG_MAX (2 MiB by default) anyway.
_BUFFER = bytearray(4 << 20)


def receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One whole message and the fds it carries (closed on exec); ``b""`` at EOF."""
    size, ancdata, flags, _ = sock.recvmsg_into(
        [_BUFFER], socket.CMSG_SPACE(8), socket.MSG_CMSG_CLOEXEC
    )
    # A cut message (MSG_TRUNC in flags) fails to unmarshal: the server hears why.
    data = bytes(memoryview(_BUFFER)[:size])
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(
                int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)
            )
    return data, fds


class Shepherd:
    """Runs the scripts a server sends, one at a time, and every process they start."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.leader = 0  # the running script's pid, 0 when idle
        self.exited = False
        self.grace = 5.0
        self.cwd = ""
        become_subreaper()
        self.wake = Wakeups()
        # Signals this process ignores would stay ignored in the script: reset them.
        self.restored = [s for s in signal.valid_signals() if signal.getsignal(s) is signal.SIG_IGN]

    def serve(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(self.wake.read_fd, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self.wake.read_fd:
                    self.wake.drain()
                    self.reap(finished=True)
                elif not self.on_message():
                    return

    def send(self, message: bytes) -> None:
        with contextlib.suppress(OSError):  # the server is gone: its EOF is next
            self.sock.send(message)

    def on_message(self) -> bool:
        """Act on one message from the server; False when this shepherd is done."""
        data, fds = receive(self.sock)
        kind = data[:1]
        if kind == b"R":
            self.start(data[1:], fds)
            return True
        for fd in fds:
            os.close(fd)
        if kind == b"T" and self.leader:
            self.signal_run(signal.SIGTERM)
        elif kind == b"K" and self.leader:
            self.kill_all()
            self.idle(b"C")
        elif kind in (b"Q", b""):
            if kind == b"" and self.leader:
                self.abandon()
            return False
        return True

    def start(self, payload: bytes, fds: list[int]) -> None:
        try:
            argv, env, cwd, limits, self.grace = marshal.loads(payload)
            out, err = fds
            if limits:
                pid = spawn_limited(argv, env, cwd, limits, out, err)
            else:
                if cwd != self.cwd:
                    os.chdir(cwd)
                    self.cwd = cwd
                pid = os.posix_spawn(
                    argv[0],
                    argv,
                    env,
                    file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)],
                    setsid=True,
                    setsigdef=self.restored,
                    setsigmask=(),
                )
        except OSError as exc:
            self.send(b"F%d %s" % (exc.errno or 0, (exc.strerror or str(exc)).encode()))
            return
        except (ValueError, TypeError, EOFError) as exc:
            self.send(b"F0 bad request: %s" % str(exc).encode())
            return
        finally:
            for fd in fds:
                os.close(fd)
        self.leader, self.exited = pid, False

    def reap(self, *, finished: bool) -> None:
        """Reap every child that ended; report the script's end when it is among them."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                return
            self.ended(pid, status, finished=finished)

    def ended(self, pid: int, status: int, *, finished: bool) -> None:
        if pid != self.leader or self.exited:
            return
        self.exited = True
        code = os.waitstatus_to_exitcode(status)
        if finished and not self.has_children():
            self.idle(b"Y%d" % code)
            return
        # Anything left is a background process: the server decides when it must go.
        self.send(b"X%d" % code)

    def has_children(self) -> bool:
        """Reaps the children that ended; True if any is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            self.ended(pid, status, finished=False)

    def idle(self, message: bytes) -> None:
        self.leader, self.exited = 0, False
        self.send(message)

    def signal_run(self, sig: int) -> None:
        """``sig`` to the script's process group, then to every process of the run."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.leader, sig)
        signal_all(descendants_of(os.getpid()), sig)

    def kill_all(self) -> None:
        """SIGKILL every process of the run, again until none is left; reap them all."""
        while True:
            self.reap(finished=False)
            remaining = descendants_of(os.getpid())
            if not remaining:
                return
            self.signal_run(signal.SIGKILL)
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            self.ended(pid, status, finished=False)

    def abandon(self) -> None:
        """The server is gone: SIGTERM, ``grace`` seconds for the script, then SIGKILL."""
        self.signal_run(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while not self.exited and time.monotonic() < deadline:
            left = max(0.0, deadline - time.monotonic())
            ready = select.select([self.wake.read_fd], [], [], left)[0]
            if ready:
                self.wake.drain()
            self.reap(finished=False)
        self.kill_all()


def spawn_limited(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    limits: list[tuple[int, int]],
    out: int,
    err: int,
) -> int:
    """fork + exec with resource limits (posix_spawn cannot set them); OSError if the
    exec fails, as posix_spawn reports it."""
    import resource

    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        code = 0
        try:
            os.setsid()
            os.chdir(cwd)
            for res, value in limits:
                resource.setrlimit(res, (value, value))
            os.dup2(out, 1)
            os.dup2(err, 2)
            for sig in signal.valid_signals():
                if signal.getsignal(sig) is signal.SIG_IGN:
                    signal.signal(sig, signal.SIG_DFL)
            os.execve(argv[0], argv, env)
        except OSError as exc:
            code = exc.errno or 1
        except BaseException:
            code = 12  # ENOMEM: under a low memory limit nothing else can be said
        os.write(report_w, str(code).encode())
        os._exit(127)
    os.close(report_w)
    try:
        report = os.read(report_r, 16)
    finally:
        os.close(report_r)
    if report:
        os.waitpid(pid, 0)
        code = int(report)
        raise OSError(code, os.strerror(code), argv[0])
    return pid


class Spawner:
    """Forks a shepherd for each socket the server sends; reaps them; ends the orphans of a
    shepherd that died; once the server is gone, waits for the shepherds to end their runs."""

    def __init__(self, control: socket.socket, grace: float) -> None:
        self.control: socket.socket | None = control
        self.grace = grace
        self.shepherds: set[int] = set()
        self.deadline = 0.0
        become_subreaper()
        self.wake = Wakeups()

    def serve(self) -> None:
        while self.control is not None or self.shepherds or children_of(os.getpid()):
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
        if not data:
            self.control.close()
            self.control = None
            self.deadline = time.monotonic() + self.grace + 5.0
            return
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
        orphans = [p for p in children_of(os.getpid()) if p not in self.shepherds]
        for pid in orphans:
            signal_all([pid, *descendants_of(pid)], signal.SIGKILL)


def main(argv: list[str]) -> int:
    control_fd, lock_fd, grace = argv
    # Inherited on purpose; closed on exec so that no script gets them.
    os.set_inheritable(int(control_fd), False)
    if lock_fd != "-":
        os.set_inheritable(int(lock_fd), False)
    Spawner(socket.socket(fileno=int(control_fd)), float(grace)).serve()
    return 0


if __name__ == "__main__":  # pragma: no cover - run by runner.kinds.spawner
    sys.exit(main(sys.argv[1:]))

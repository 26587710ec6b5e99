"""A shepherd: runs the scripts its server sends, one at a time, with every process they
start, and sends their output on (the protocol is in the package docstring).

The script's stdout and stderr are read here, in the order the kernel reports them
readable, cut into lines (at most ``max_line`` bytes each) and sent at most HOLD seconds
after they came — or with the end of the run if it comes first, so that a short script
costs one message. The run ends once the script has exited and its output is at EOF;
whatever it left running then is killed, and so is whatever still holds its output
PIPE_GRACE seconds after it exited (``left_behind``).
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import math
import os
import select
import signal
import socket
import time

from .tree import become_subreaper, descendants_of, reap_any, receive, signal_all

HOLD = 0.02  # at most this long does a line wait for the ones after it
PIPE_GRACE = 2.0  # how long after the exit processes may hold the script's output
FLUSH_BYTES = 64 * 1024  # a message of lines carries about this much at most
# (flags, lines): the lines of one stream, in order, newline-separated, without the last
# newline — one block per run of lines from the same stream, in the order they came.
# flags: 1 from stderr; 2 a piece of a line longer than max_line, continued by the next
# block of its stream (the server masks secrets across the cut before it is shown).
Lines = tuple[int, bytes]
STDERR, CONTINUED = 1, 2


class Run:
    """The script a shepherd runs now, and the output not yet sent."""

    def __init__(self, leader: int, pipes: dict[int, bool], grace: float, max_line: int) -> None:
        self.leader = leader
        # Readable once the script exits: no SIGCHLD handler, no interrupted poll.
        self.pidfd: int | None = os.pidfd_open(leader)
        self.code: int | None = None
        self.pipes = pipes  # read end → from stderr, while open
        self.partial: dict[int, bytes] = {}
        self.grace = grace
        self.max_line = max_line
        self.lines: list[Lines] = []
        self.size = 0
        self.since = 0.0  # when the oldest line not sent came
        self.exited_at = 0.0
        self.left_behind = False

    def take(self, fd: int, chunk: bytes) -> None:
        """The complete lines of ``chunk``, as one block; a last line without newline
        waits for more (cut into ``max_line`` pieces if it grows past that)."""
        err = self.pipes[fd]
        pending = self.partial.pop(fd, b"") + chunk
        end = pending.rfind(b"\n") + 1
        if end:
            # A \r before a newline is part of the line's end, not of the line.
            self.add(err, pending[:end].replace(b"\r\n", b"\n")[:-1])
            pending = pending[end:]
        while len(pending) > self.max_line:
            self.put(err | CONTINUED, pending[: self.max_line])
            pending = pending[self.max_line :]
        if pending:
            self.partial[fd] = pending

    def add(self, err: int, block: bytes) -> None:
        """Lines (newline-separated) from one stream; longer ones cut in pieces, each but
        the last sent as a CONTINUED block of its own."""
        if len(block) <= self.max_line or max(map(len, block.split(b"\n"))) <= self.max_line:
            self.put(err, block)
            return
        kept: list[bytes] = []
        step = self.max_line
        for line in block.split(b"\n"):
            if len(line) <= step:
                kept.append(line)
                continue
            if kept:
                self.put(err, b"\n".join(kept))
            pieces = [line[i : i + step] for i in range(0, len(line), step)]
            for piece in pieces[:-1]:
                self.put(err | CONTINUED, piece)
            kept = [pieces[-1]]
        self.put(err, b"\n".join(kept))

    def put(self, flags: int, block: bytes) -> None:
        if not self.lines:
            self.since = time.monotonic()
        self.lines.append((flags, block))
        self.size += len(block) + 16

    def close(self, fd: int) -> None:
        """EOF (or the end) of ``fd``: its last line without newline counts too."""
        rest = self.partial.pop(fd, b"")
        if rest:
            self.add(self.pipes[fd], rest.removesuffix(b"\r"))
        del self.pipes[fd]
        os.close(fd)

    def pop_lines(self) -> list[Lines]:
        lines, self.lines, self.size = self.lines, [], 0
        return lines


class Shepherd:
    """Serves one server's socket: a script at a time, and every process it starts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.run: Run | None = None
        self.cwd = ""
        become_subreaper()
        # Signals this process ignores would stay ignored in the script: reset them.
        self.restored = [s for s in signal.valid_signals() if signal.getsignal(s) is signal.SIG_IGN]
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)

    def serve(self) -> None:
        """Until the server says Q or is gone (then the run in progress is ended)."""
        while True:
            for fd, _ in self.poller.poll(self.timeout()):
                run = self.run
                if fd == self.sock.fileno():
                    if not self.on_message():
                        return
                elif run is not None and fd == run.pidfd:
                    self.exited(run)
                else:
                    self.on_pipe(fd)
            self.tick()

    def timeout(self) -> int | None:
        """Milliseconds until lines must go or PIPE_GRACE is over; None: no such moment."""
        run = self.run
        if run is None:
            return None
        moments = [run.since + HOLD] if run.lines else []
        if run.code is not None and run.pipes:
            moments.append(run.exited_at + PIPE_GRACE)
        if not moments:
            return None
        return max(0, math.ceil((min(moments) - time.monotonic()) * 1000))

    def send(self, message: bytes) -> None:
        with contextlib.suppress(OSError):  # the server is gone: its EOF is next
            self.sock.send(message)

    def on_message(self) -> bool:
        """Act on one message from the server; False when this shepherd is done."""
        data, fds = receive(self.sock)
        for fd in fds:
            os.close(fd)
        kind = data[:1]
        if kind == b"R":
            self.start(data[1:])
        elif kind == b"T" and self.run is not None:
            self.signal_run(signal.SIGTERM)
        elif kind == b"K" and self.run is not None:
            self.kill_all()
        elif kind in (b"Q", b""):
            if self.run is not None:
                self.abandon()
            return False
        return True

    def start(self, payload: bytes) -> None:
        try:
            if self.run is not None:
                raise ValueError("a script is running already")
            argv, env, cwd, limits, grace, max_line = marshal.loads(payload)
        except (ValueError, TypeError, EOFError) as exc:
            self.send(b"F" + marshal.dumps((0, f"bad request: {exc}")))
            return
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = self.spawn(argv, env, cwd, limits, out_w, err_w)
        except OSError as exc:
            os.close(out_r)
            os.close(err_r)
            self.send(b"F" + marshal.dumps((exc.errno or 0, exc.strerror or str(exc))))
            return
        finally:
            os.close(out_w)
            os.close(err_w)
        self.run = run = Run(pid, {out_r: False, err_r: True}, grace, max_line)
        for fd in (out_r, err_r):
            # Non-blocking, so that the exit can drain them at once (a fresh pipe's read
            # end has no other status flag to keep).
            fcntl.fcntl(fd, fcntl.F_SETFL, os.O_NONBLOCK)
            self.poller.register(fd, select.POLLIN)
        assert run.pidfd is not None
        self.poller.register(run.pidfd, select.POLLIN)

    def spawn(
        self, argv: list[str], env: dict[str, str], cwd: str, limits: list[tuple[int, int]],
        out: int, err: int,
    ) -> int:  # fmt: skip
        if limits:
            return spawn_limited(argv, env, cwd, limits, out, err)
        if cwd != self.cwd:
            os.chdir(cwd)
            self.cwd = cwd
        return os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)],
            setsid=True,
            setsigdef=self.restored,
            setsigmask=(),
        )

    def on_pipe(self, fd: int) -> bool:
        """Read what ``fd`` has; False once it is at EOF or has nothing more for now."""
        run = self.run
        if run is None or fd not in run.pipes:
            return False
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if chunk:
            run.take(fd, chunk)
            return True
        self.poller.unregister(fd)
        run.close(fd)
        return False

    def exited(self, run: Run) -> None:
        """The script exited: reap it, and read its output to EOF if nothing else holds it
        (the usual case: one wake-up ends the run)."""
        with contextlib.suppress(ChildProcessError):
            self.ended(*os.waitpid(run.leader, 0))
        for fd in list(run.pipes):
            while self.on_pipe(fd):
                pass

    def tick(self) -> None:
        """After each wake-up: end the run, or send lines, when it is time."""
        run = self.run
        if run is None:
            return
        now = time.monotonic()
        if run.code is not None and not run.pipes:
            self.finish(run)
            return
        if run.code is not None and now >= run.exited_at + PIPE_GRACE:
            if run.left_behind:
                # Killed, yet the output is still open (a copy of it got outside the run).
                for fd in list(run.pipes):
                    self.poller.unregister(fd)
                    run.close(fd)
                self.finish(run)
                return
            run.left_behind = True
            run.exited_at = now  # one more grace for the pipes to reach EOF
            self.kill_all()
        if run.lines and (run.size >= FLUSH_BYTES or now >= run.since + HOLD):
            self.send(b"O" + marshal.dumps(run.pop_lines()))

    def finish(self, run: Run) -> None:
        # What it left running that does not hold its output goes too: nothing of a run
        # outlives it.
        self.kill_all()
        self.run = None
        self.send(b"E" + marshal.dumps((run.code, run.left_behind, run.pop_lines())))

    def ended(self, pid: int, status: int) -> None:
        run = self.run
        if run is not None and pid == run.leader and run.code is None:
            run.code = os.waitstatus_to_exitcode(status)
            run.exited_at = time.monotonic()
            if run.pidfd is not None:
                self.poller.unregister(run.pidfd)
                os.close(run.pidfd)
                run.pidfd = None

    def signal_run(self, sig: int) -> None:
        """``sig`` to the script's process group, then to every process of the run."""
        if self.run is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.run.leader, sig)
        signal_all(descendants_of(os.getpid()), sig)

    def kill_all(self) -> None:
        """SIGKILL every process of the run, again until none is left; reap them all."""
        while True:
            try:
                while (got := reap_any()) is not None:
                    self.ended(*got)
            except ChildProcessError:
                return  # no child left: nothing of the run runs any more
            self.signal_run(signal.SIGKILL)
            try:
                self.ended(*os.waitpid(-1, 0))
            except ChildProcessError:
                return

    def abandon(self) -> None:
        """The server is gone: SIGTERM, ``grace`` seconds for the script, then SIGKILL."""
        run = self.run
        assert run is not None
        for fd in list(run.pipes):  # a script writing to them gets EPIPE
            self.poller.unregister(fd)
            run.close(fd)
        self.signal_run(signal.SIGTERM)
        if run.pidfd is not None and select.select([run.pidfd], [], [], run.grace)[0]:
            with contextlib.suppress(ChildProcessError):
                self.ended(*os.waitpid(run.leader, 0))
        self.kill_all()
        self.run = None


def spawn_limited(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    limits: list[tuple[int, int]],
    out: int,
    err: int,
) -> int:
    """fork + exec with resource limits (posix_spawn cannot set them); OSError if the exec
    fails, as posix_spawn reports it."""
    import resource

    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        code = 0
        try:
            os.setsid()
            os.chdir(cwd)
            os.dup2(out, 1)
            os.dup2(err, 2)
            for sig in signal.valid_signals():
                if signal.getsignal(sig) is signal.SIG_IGN:
                    signal.signal(sig, signal.SIG_DFL)
            for res, value in limits:
                resource.setrlimit(res, (value, value))
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

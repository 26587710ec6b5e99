"""The server's end of the script spawner (the processes are in :mod:`runner.kinds.shepherd`).

    Spawner.spawn(argv, env, cwd, limits, on_lines) ─► an idle shepherd (or a new one,
        forked by the spawner process) ─► Script: on_lines(…) as the output comes,
        ended() → code, last lines (or error); terminate(), kill()

The spawner process starts with the runtime; a shepherd is forked the first time more
scripts run at once than there are shepherds, then reused. Nothing here blocks the loop:
a run is one message to a shepherd, and its output and end come back in a few messages
(one, for a short script), read on the loop like any socket's.

If the spawner process dies, runs in flight go on (their shepherds talk to the server
directly); new runs get a new spawner, and the old shepherds quit once idle. If a shepherd
dies, its run fails with a reason, and the spawner ends the processes it leaves behind.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import logging
import marshal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.errors import JobError
from runner.output import MAX_LINE

log = logging.getLogger("runner.spawner")

# The spawner runs the shepherd package on its own: the standard library only, not the
# runner package (isolated mode: no PYTHON* variable, no user site, no script folder).
SHEPHERD = Path(__file__).with_name("shepherd")
LAUNCH = (
    "import importlib.util as u, sys\n"
    "s = u.spec_from_file_location('shepherd', sys.argv[1] + '/__init__.py',"
    " submodule_search_locations=[sys.argv[1]])\n"
    "sys.modules['shepherd'] = m = u.module_from_spec(s)\n"
    "s.loader.exec_module(m)\n"
    "from shepherd.spawnd import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
# Shepherds kept when idle; more are made under load, and quit when they come back.
KEEP_IDLE = 64
# A request must fit one datagram (the kernel's default socket buffer is ~208 KiB).
MAX_REQUEST = 192 * 1024
# (flags, lines): newline-separated lines of one stream; flags 1: stderr, 2: a piece of a
# long line that the next block of its stream continues (see runner.kinds.shepherd.herd).
Lines = tuple[int, bytes]
OnLines = Callable[[list[Lines]], None]


class Script:
    """One script run by a shepherd: its output as it comes, its end, control over it.

    Once it is over, ``code`` is its exit code (negative: killed by that signal), ``lines``
    the last of its output, ``left_behind`` whether processes still held its output
    PIPE_GRACE seconds after it exited (they were killed); or ``error`` says why there is
    no code: OSError if it could not start, JobError if its shepherd died under it.
    """

    def __init__(self, shepherd: _Shepherd, program: str, on_lines: OnLines) -> None:
        self.program = program
        self.on_lines = on_lines
        self.code: int | None = None
        self.left_behind = False
        self.lines: list[Lines] = []
        self.error: Exception | None = None
        self._shepherd: _Shepherd | None = shepherd
        self._waiters: list[asyncio.Future[None]] = []

    def ended(self) -> asyncio.Future[None]:
        """A future resolved once the run is over (a new one each call)."""
        assert self._shepherd is not None or self.code is not None or self.error is not None
        waiter = _loop().create_future()
        if self.code is not None or self.error is not None:
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def terminate(self) -> None:
        """SIGTERM to the script's process group and every process it started."""
        if self._shepherd is not None:
            self._shepherd.send(b"T")

    def kill(self) -> None:
        """SIGKILL to every process of the run."""
        if self._shepherd is not None:
            self._shepherd.send(b"K")

    def _over(self, code: int | None, error: Exception | None) -> None:
        self._shepherd = None
        self.code, self.error = code, error
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


class _Shepherd:
    """The server's connection to one shepherd process."""

    def __init__(self, spawner: Spawner, sock: socket.socket, generation: int) -> None:
        self.loop = _loop()
        self.spawner = spawner
        self.sock = sock
        self.generation = generation
        self.script: Script | None = None
        self.alive = True
        self.loop.add_reader(sock.fileno(), self._readable)

    def send(self, message: bytes) -> bool:
        if not self.alive:
            return False
        try:
            self.sock.send(message)
        except OSError:
            return False  # it died; its EOF is on its way
        return True

    def _readable(self) -> None:
        buffer = self.spawner.buffer
        while self.alive:
            try:
                size = self.sock.recv_into(buffer)
            except BlockingIOError:
                return
            except OSError:
                size = 0
            if not size:
                self._lost()
                return
            self._on(buffer[0], memoryview(buffer)[1:size])

    def _on(self, kind: int, body: memoryview) -> None:
        script = self.script
        if script is None:
            return
        if kind == ord("O"):
            script.on_lines(marshal.loads(body))
            return
        if kind == ord("E"):
            code, script.left_behind, script.lines = marshal.loads(body)
            script._over(code, None)
        elif kind == ord("F"):
            number, text = marshal.loads(body)
            script._over(None, OSError(number, text, script.program))
        else:
            return
        self.script = None
        self.spawner._idle(self)

    def _lost(self) -> None:
        self.close()
        script, self.script = self.script, None
        if script is not None:
            lost = "the runner process that supervised this script died before it ended; "
            script._over(None, JobError(lost + "the script's processes were ended"))
        self.spawner._forget(self)

    def close(self) -> None:
        if self.alive:
            self.alive = False
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class Spawner:
    """Starts scripts through a spawner process and its shepherds (one per running script).

    ``lock_fd`` (the server's hold on its state dir) is kept open by those processes for
    as long as any script of this server runs, even after the server itself died.
    """

    def __init__(self, kill_grace: float, lock_fd: int | None = None) -> None:
        self.kill_grace = kill_grace
        self.lock_fd = lock_fd
        self.proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._generation = 0
        self._idle_shepherds: list[_Shepherd] = []
        self._busy: set[_Shepherd] = set()
        self._closing = False
        # Every answer of every shepherd is read into this one buffer.
        self.buffer = bytearray(256 * 1024)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, *, warm: int = 0) -> None:
        """Start the spawner process (if it is not running) with ``warm`` idle shepherds
        asked for, so that the first runs need not wait for a fork; returns at once."""
        if self._control is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.fileno()] + ([self.lock_fd] if self.lock_fd is not None else [])
        lock = str(self.lock_fd) if self.lock_fd is not None else "-"
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", LAUNCH, str(SHEPHERD)]
                + [str(theirs.fileno()), lock, repr(self.kill_grace)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=fds,
                # Its own session: a Ctrl-C meant for `runner run` is the runner's to handle.
                start_new_session=True,
            )
        ours.setblocking(False)
        self._control = ours
        self._generation += 1
        asyncio.get_running_loop().add_reader(ours.fileno(), self._control_readable)
        self._idle_shepherds += [self._new_shepherd() for _ in range(warm)]

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        limits: Sequence[tuple[int, int]],
        on_lines: OnLines,
    ) -> Script:
        """Start ``argv`` in ``cwd``; ``on_lines`` gets its output as it comes. Raises
        OSError when it is too large to send or no shepherd can be reached."""
        request = b"R" + marshal.dumps((argv, env, cwd, list(limits), self.kill_grace, MAX_LINE))
        if len(request) > MAX_REQUEST:
            raise OSError(
                errno.E2BIG,
                f"the script's arguments and environment are too large ({len(request)} bytes)",
                argv[0],
            )
        for _ in range(3):
            shepherd = self._take()
            script = Script(shepherd, argv[0], on_lines)
            if shepherd.send(request):
                shepherd.script = script
                self._busy.add(shepherd)
                return script
            shepherd.close()
            self._forget(shepherd)
        raise OSError("the script spawner does not answer")

    async def close(self) -> None:
        """Let the shepherds go (a busy one ends its run's processes first) and wait, a
        bounded time, for the spawner process to end."""
        self._closing = True
        for shepherd in [*self._idle_shepherds, *self._busy]:
            shepherd.close()
        self._idle_shepherds.clear()
        self._busy.clear()
        self._stop_control()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for _ in range(int((self.kill_grace + 5) * 50)):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.02)
        log.warning("the script spawner did not stop in time; killed it")
        proc.kill()
        proc.wait()

    # -- the pool ----------------------------------------------------------------------

    def _take(self) -> _Shepherd:
        while self._idle_shepherds:
            shepherd = self._idle_shepherds.pop()
            if shepherd.alive:
                return shepherd
        return self._new_shepherd()

    def _new_shepherd(self) -> _Shepherd:
        for _ in range(2):
            self.start()
            assert self._control is not None
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            with theirs:
                try:
                    self._control.sendmsg(
                        [b"N"],
                        [
                            (
                                socket.SOL_SOCKET,
                                socket.SCM_RIGHTS,
                                array.array("i", [theirs.fileno()]),
                            )
                        ],
                    )
                except OSError:
                    ours.close()
                    self._spawner_gone()
                    continue
            ours.setblocking(False)
            return _Shepherd(self, ours, self._generation)
        raise OSError("the script spawner could not be started")

    def _idle(self, shepherd: _Shepherd) -> None:
        self._busy.discard(shepherd)
        stale = shepherd.generation != self._generation
        if self._closing or stale or len(self._idle_shepherds) >= KEEP_IDLE:
            shepherd.send(b"Q")
            shepherd.close()
        else:
            self._idle_shepherds.append(shepherd)

    def _forget(self, shepherd: _Shepherd) -> None:
        self._busy.discard(shepherd)
        with contextlib.suppress(ValueError):
            self._idle_shepherds.remove(shepherd)

    # -- the spawner process ---------------------------------------------------------

    def _control_readable(self) -> None:
        assert self._control is not None
        try:
            data = self._control.recv(16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            log.warning(
                "the script spawner (pid %s) died; a new one starts with the next run", self.pid
            )
            self._spawner_gone()

    def _spawner_gone(self) -> None:
        """Forget the dead spawner: its idle shepherds quit now, busy ones after their run."""
        self._stop_control()
        self._generation += 1  # the shepherds it made are not handed new runs
        for shepherd in self._idle_shepherds:
            shepherd.send(b"Q")
            shepherd.close()
        self._idle_shepherds.clear()
        proc, self.proc = self.proc, None
        if proc is not None:
            self._reap_later(proc)

    def _reap_later(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            asyncio.get_running_loop().call_later(0.05, self._reap_later, proc)

    def _stop_control(self) -> None:
        if self._control is not None:
            asyncio.get_running_loop().remove_reader(self._control.fileno())
            self._control.close()
            self._control = None

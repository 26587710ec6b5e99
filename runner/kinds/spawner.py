"""The server's end of the script spawner (the processes are in :mod:`runner.kinds.shepherd`).

    Spawner.spawn(argv, env, cwd, limits, pipes) ─► an idle shepherd (or a new one, forked
        by the spawner process) ─► Script: code (or error), on_exit, exited(), terminate(),
        kill(), release() (what remains of the run is killed; the shepherd takes the next)

The spawner process starts with the runtime; a shepherd is forked the first time more
scripts run at once than there are shepherds, then reused. Nothing here blocks the loop:
a spawn is one ``sendmsg`` and the answers arrive on the loop like any socket's.

If the spawner process dies, runs in flight go on (their shepherds talk to the server
directly); new runs get a new spawner, and the old shepherds quit once idle. If a shepherd
dies, its run fails with a reason, and the spawner ends the processes it leaves behind.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import marshal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.errors import JobError

log = logging.getLogger("runner.spawner")

SHEPHERD = Path(__file__).with_name("shepherd.py")
# Shepherds kept when idle; more are made under load, and quit when they come back.
KEEP_IDLE = 64


class Script:
    """One script started by a shepherd: its exit, and control over its processes.

    ``code`` is its exit code once known (negative: killed by that signal); ``error`` is set
    instead if it could not start (OSError) or its shepherd died first (JobError).
    ``on_exit`` is called when either is set.
    """

    def __init__(self, shepherd: _Shepherd, program: str) -> None:
        self.program = program
        self.code: int | None = None
        self.error: Exception | None = None
        self.on_exit: Callable[[], None] | None = None
        self._shepherd: _Shepherd | None = shepherd
        self._loop = shepherd.loop
        self._waiters: list[asyncio.Future[None]] = []

    def exited(self) -> asyncio.Future[None]:
        """A future resolved once ``code`` or ``error`` is set (a new one each call)."""
        waiter = self._loop.create_future()
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

    def release(self) -> None:
        """The run is over: whatever of it still runs is killed."""
        if self._shepherd is not None and self.code is not None:
            self._shepherd.send(b"K")

    def _ended(self, code: int) -> None:
        if self.code is None and self.error is None:
            self.code = code
            self._wake()

    def _failed(self, exc: Exception) -> None:
        self._shepherd = None
        if self.code is None and self.error is None:
            self.error = exc
            self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        if self.on_exit is not None:
            self.on_exit()

    def _clean(self) -> None:
        """Nothing of the run is left: the shepherd belongs to the next run."""
        self._shepherd = None


class _Shepherd:
    """The server's connection to one shepherd process."""

    def __init__(self, spawner: Spawner, sock: socket.socket, generation: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.spawner = spawner
        self.sock = sock
        self.generation = generation
        self.script: Script | None = None
        self.alive = True
        self.loop.add_reader(sock.fileno(), self._readable)

    def send(self, message: bytes, fds: Sequence[int] = ()) -> bool:
        if not self.alive:
            return False
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        try:
            self.sock.sendmsg([message], ancillary)
        except OSError:
            return False  # it died; its EOF is on its way
        return True

    def _readable(self) -> None:
        while self.alive:
            try:
                data = self.sock.recv(256)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._on(data[:1], data[1:])

    def _on(self, kind: bytes, rest: bytes) -> None:
        script = self.script
        if script is None:
            return
        if kind in (b"X", b"Y"):
            script._ended(int(rest))
        elif kind == b"F":
            number, _, text = rest.partition(b" ")
            script._failed(OSError(int(number), text.decode(errors="replace"), script.program))
        if kind in (b"Y", b"C", b"F"):
            script._clean()
            self.script = None
            self.spawner._idle(self)

    def _lost(self) -> None:
        self.close()
        script, self.script = self.script, None
        if script is not None:
            script._failed(
                JobError(
                    "the runner process that supervised this script died before it ended; "
                    "the script's processes were ended"
                )
            )
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

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the spawner process (if it is not running); returns at once."""
        if self._control is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.fileno()] + ([self.lock_fd] if self.lock_fd is not None else [])
        lock = str(self.lock_fd) if self.lock_fd is not None else "-"
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(SHEPHERD), str(theirs.fileno()), lock]
                + [repr(self.kill_grace)],
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

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        limits: Sequence[tuple[int, int]],
        pipes: tuple[int, int],
    ) -> Script:
        """Start ``argv`` in ``cwd`` with stdout and stderr on ``pipes``; the caller closes
        its copies of them. Raises OSError when no shepherd can be reached."""
        request = b"R" + marshal.dumps((argv, env, cwd, list(limits), self.kill_grace))
        for _ in range(3):
            shepherd = self._take()
            script = Script(shepherd, argv[0])
            if shepherd.send(request, pipes):
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

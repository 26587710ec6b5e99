"""Fixtures for the script kinds: a job folder of their own, and ``runner serve`` under a
reaper that stands for init (systemd), so that a test can see every process a server
leaves behind after a kill -9 — orphans and zombies alike."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Served

HERE = Path(__file__).parent
KIND_JOBS = HERE / "jobs"


@pytest.fixture(autouse=True)
def measured_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under coverage, the spawner and its shepherds (and servers started here) are measured
    too: coverage's .pth file starts it in any Python process that has this variable."""
    if "coverage" in sys.modules:
        import coverage

        if coverage.Coverage.current() is not None:
            monkeypatch.setenv("COVERAGE_PROCESS_START", str(ROOT / "pyproject.toml"))


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    return found


def tree(pid: int) -> list[int]:
    """Every process below ``pid``."""
    found, todo = [], children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def state(pid: int) -> str | None:
    """The process state letter (Z: zombie), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def running(pid: int) -> bool:
    return state(pid) not in (None, "Z")


def wait_gone(pids: list[int], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while alive := [p for p in pids if running(p)]:
        assert time.monotonic() < deadline, f"still running: {[cmdline(p) for p in alive]}"
        time.sleep(0.05)


@dataclasses.dataclass
class Reaped:
    """``runner serve`` started by the reaper (its ``proc``), and what runs under it."""

    served: Served
    reaper: subprocess.Popen[str]

    @property
    def server_pid(self) -> int:
        (pid,) = children(self.reaper.pid)[:1]
        return pid

    def spawner_pid(self) -> int:
        found = [p for p in children(self.server_pid) if "spawnd" in cmdline(p)]
        assert len(found) == 1, [cmdline(p) for p in children(self.server_pid)]
        return found[0]

    def kill9_server(self) -> None:
        os.kill(self.server_pid, signal.SIGKILL)

    def wait_empty(self, within: float = 15) -> int:
        """Wait for the reaper to end: every process under it ended and was reaped."""
        try:
            return self.reaper.wait(within)
        except subprocess.TimeoutExpired:
            left = [f"{p} {state(p)} {cmdline(p)}" for p in tree(self.reaper.pid)]
            raise AssertionError(f"processes left under the server: {left}") from None


@pytest.fixture
def reaped_server(tmp_path: Path) -> Iterator[Callable[..., Reaped]]:
    """Factory: ``runner serve`` on KIND_JOBS under the reaper; stopped at the end."""
    started: list[Reaped] = []

    def start(state_dir: Path | None = None, **env: str) -> Reaped:
        state_dir = state_dir or tmp_path / "state"
        cmd = [sys.executable, str(HERE / "reaper.py"), sys.executable, "-m", "runner", "serve"]
        cmd += ["--port", "0", "--state-dir", str(state_dir), "--jobs", str(KIND_JOBS)]
        environ = {
            **os.environ,
            "RUNNER_BUILTIN_JOBS": "false",
            "RUNNER_LOG_FORMAT": "json",
            "RUNNER_RATE_LIMIT": "0",
            "RUNNER_KILL_GRACE": "1",
            **env,
        }
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd=ROOT
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("runner listening on "):
            proc.kill()
            raise AssertionError(f"no server: {line}{proc.stderr.read() if proc.stderr else ''}")
        served = Served(line.split()[-1], state_dir / "tls" / "cert.pem", state_dir, proc=proc)
        reaped = Reaped(served, proc)
        started.append(reaped)
        deadline = time.monotonic() + 10
        with served.client() as c:
            while True:
                try:
                    if c.get("/_ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server never became ready"
                time.sleep(0.05)
        return reaped

    yield start
    for reaped in started:
        if reaped.reaper.poll() is None:
            reaped.served.stop()
        for pipe in (reaped.reaper.stdout, reaped.reaper.stderr):
            if pipe is not None:
                pipe.close()

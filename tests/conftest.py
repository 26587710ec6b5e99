"""Shared fixtures: real servers on loopback over TLS, in a thread or in a subprocess.

Network guard: pytest-socket (``--allow-hosts`` in pyproject) refuses any connection that
is not to loopback, so a test that would reach 169.254.169.254 or the Internet fails loudly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.sandbox import Sandbox
from runner.server import RunnerServer, prepare
from runner.settings import Settings, from_values
from tests import pgcluster

# Started in the background by a shell without job control (`make test &`, nohup), the
# suite inherits SIGINT ignored, and so would every `runner` it starts: the Ctrl-C tests
# would see a client that cannot be interrupted. Children of a process that handles
# SIGINT get the default action, as in a terminal or a CI step.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TEST_JOBS = Path(__file__).parent / "jobs"
ROOT = Path(__file__).parent.parent


@dataclasses.dataclass
class Served:
    """A running server and what a test needs to talk to it."""

    url: str
    cacert: Path | None  # None: plain HTTP (tls=False, behind a front)
    state_dir: Path
    server: RunnerServer | None = None
    thread: threading.Thread | None = None
    proc: subprocess.Popen[str] | None = None

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cacert) if self.cacert else None)

    def client(self, **kw: Any) -> httpx.Client:
        kw.setdefault("timeout", 20)
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), **kw)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(15)
            assert not self.thread.is_alive(), "server thread did not stop"
            self.thread = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def make_settings(state_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "state_dir": state_dir,
        "jobs": (TEST_JOBS,),
        "builtin_jobs": False,
        "log_format": "json",
        "heartbeat": 1.0,
        # pytest-socket's loopback guard sees asyncio's connects, not uvloop's.
        "loop": "asyncio",
        # Tests start runs quickly on purpose; the rate limit has tests of its own.
        "rate_limit": 0.0,
    }
    base.update(overrides)
    return from_values(base)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Tests that call ``cli.main`` configure logging with a handler on the stderr pytest
    captures for that test, and closes after it: put the root logger back, so that later
    tests' servers do not write into a closed stream ("Logging error")."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Factory: start a real uvicorn server over TLS in a thread (``serve(max_running=1)``)."""
    started: list[Served] = []

    def start(*, store: Any = None, extensions: Any = None, **overrides: Any) -> Served:
        state = overrides.pop("state_dir", tmp_path / f"state{len(started)}")
        prepared = prepare(make_settings(state, **overrides), store=store, extensions=extensions)
        server = RunnerServer.of(prepared)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [prepared.sock]}, daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "server thread died at start"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        served = Served(prepared.url, prepared.cacert, state, server=server, thread=thread)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Factory: ``runner serve`` as a real subprocess (for kill -9 and SIGTERM tests)."""
    started: list[Served] = []

    def start(
        state_dir: Path | None = None, *extra: str, env: dict[str, str] | None = None
    ) -> Served:
        state = state_dir or tmp_path / "pstate"
        cmd = [
            sys.executable,
            "-m",
            "runner",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(state),
            "--jobs",
            str(TEST_JOBS),
            *extra,
        ]
        environ = {
            **os.environ,
            "RUNNER_BUILTIN_JOBS": "false",
            "RUNNER_LOG_FORMAT": "json",
            "RUNNER_RATE_LIMIT": "0",
        }
        environ.update(env or {})
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd=ROOT
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("runner listening on "):
            proc.kill()
            # communicate() reads what is left and closes both pipes: none is left to the
            # garbage collector (an unclosed-file warning in a later, unrelated test).
            _, err = proc.communicate()
            raise AssertionError(f"server did not start: {line}{err}")
        url = line.split()[-1]
        served = Served(url, state / "tls" / "cert.pem", state, proc=proc)
        # Wait for the lifespan (store open, recovery) to finish.
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
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
        assert served.proc is not None
        for pipe in (served.proc.stdout, served.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgcluster.Cluster]:
    """A throwaway PostgreSQL 15 for the whole session (Unix socket only), torn down after."""
    with pgcluster.running() as cluster:
        yield cluster


_databases = itertools.count(1)


@pytest.fixture
def pg_database(pg_cluster: pgcluster.Cluster) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    return pg_cluster.create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A running sandbox (emulated Azure) with its own state directory."""
    sb = Sandbox(tmp_path / "sandbox")
    with sb.in_thread():
        yield sb


@contextlib.contextmanager
def raw_tls(srv: Served) -> Iterator[ssl.SSLSocket]:
    """A TLS socket to the server, for requests sent byte for byte (no client normalising)."""
    host, port = srv.url.removeprefix("https://").rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        srv.ssl_context().wrap_socket(raw, server_hostname=host) as s,
    ):
        yield s


def files_containing(folder: Path, needle: bytes) -> list[Path]:
    """Every file under ``folder`` holding ``needle`` (where a secret must never be)."""
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def wait_logged(c: httpx.Client, run_id: str, text: str, within: float = 10) -> None:
    """Poll the stored log until it contains ``text``."""
    deadline = time.monotonic() + within
    while text not in c.get(f"/_runs/{run_id}/log").text:
        assert time.monotonic() < deadline, f"{text!r} never reached the log of {run_id}"
        time.sleep(0.02)


def wait_final(c: httpx.Client, run_id: str, within: float = 10) -> dict[str, Any]:
    """Poll a run's record until it reaches a final state."""
    deadline = time.monotonic() + within
    while True:
        run: dict[str, Any] = c.get(f"/_runs/{run_id}").json()
        if run["state"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['state']}"
        time.sleep(0.05)


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE frames as dicts (id, event, data), comments dropped."""
    events = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        ev: dict[str, Any] = {}
        data: list[str] = []
        for line in frame.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "data":
                data.append(value)
            else:
                ev[key] = value
        if ev or data:
            ev["data"] = "\n".join(data)
            if "id" in ev:
                ev["id"] = int(ev["id"])
            events.append(ev)
    return events


def first_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The events (frames with an id) of a live SSE response, read until ``count`` came."""
    seen: list[dict[str, Any]] = []
    buf = ""
    for chunk in response.iter_text():
        buf += chunk
        frames, _, buf = buf.rpartition("\n\n")
        seen += [e for e in parse_sse(frames + "\n\n") if "id" in e]
        if len(seen) >= count:
            break
    return seen


def done_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    done = [e for e in events if e.get("event") == "done"]
    assert len(done) == 1, events
    body: dict[str, Any] = json.loads(done[0]["data"])
    return body


from tests.auth.conftest import make_htpasswd  # noqa: E402  (shared by web, ui and cli tests)

__all__ = ["make_htpasswd"]

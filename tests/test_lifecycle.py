"""Starting and stopping: SIGTERM drains, a drain has a deadline, bad job folders stop start-up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, TEST_JOBS, Served, done_of, parse_sse, wait_final, wait_logged


@pytest.fixture
def server(serve_process):
    """``runner serve`` processes (conftest's ``serve_process``)."""
    return serve_process


ASYNC = {"Prefer": "respond-async"}
# uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
CLEAN_EXIT = (0, -signal.SIGTERM)
GOOD_JOB = '"""A job."""\n\n\nasync def run(ctx):\n    ctx.print("hi")\n'


def assert_clean_log(srv: Served) -> None:
    """The stopped server logged no error and no traceback."""
    assert srv.proc is not None and srv.proc.stderr is not None
    log = srv.proc.stderr.read()
    assert "Traceback" not in log
    assert '"level": "error"' not in log
    assert "draining" in log


def wait_draining(c: httpx.Client, within: float = 5) -> httpx.Response:
    """Poll /_ready until it answers 503 (draining); that answer."""
    deadline = time.monotonic() + within
    while (ready := c.get("/_ready")).status_code != 503:
        assert time.monotonic() < deadline, "/_ready never reported draining"
        time.sleep(0.02)
    return ready


class Follower(threading.Thread):
    """Follows a run's SSE events in the background until the stream ends."""

    def __init__(self, srv: Served, run_id: str) -> None:
        super().__init__(daemon=True)
        self.srv, self.run_id = srv, run_id
        self.text = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.srv.client() as c:
                self.text = c.get(f"/_runs/{self.run_id}/events").text
        except BaseException as exc:  # reported by events()
            self.error = exc

    def events(self) -> list[dict[str, Any]]:
        self.join(15)
        assert not self.is_alive(), "the event stream did not end"
        assert self.error is None, self.error
        return parse_sse(self.text)


def test_sigterm_drains_refusing_new_runs_while_the_running_one_finishes(server):
    """After SIGTERM, /_ready and new runs get 503 while the running run finishes; then exit."""
    srv = server()
    assert srv.proc is not None
    with srv.client() as c:
        run_id = c.post("/py/sleep", params={"seconds": "2"}, headers=ASYNC).json()["id"]
        wait_logged(c, run_id, "start ")
        follower = Follower(srv, run_id)
        follower.start()
        srv.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        ready = wait_draining(c)
        assert ready.json()["ready"] is False
        refused = c.post("/py/echo", params={"rg": "x"})
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "x-run-id" not in refused.headers
        # All of that happened during the drain, with the run still going.
        assert c.get(f"/_runs/{run_id}").json()["state"] == "running"
    assert srv.proc.wait(10) in CLEAN_EXIT
    assert time.monotonic() - sent < 6
    assert_clean_log(srv)
    events = follower.events()
    done = done_of(events)
    assert done["state"] == "succeeded"
    assert done["exit_code"] == 0
    assert any(e["data"].startswith("end ") for e in events if e["event"] == "output")

    again = server(srv.state_dir)
    with again.client() as c:
        record = c.get(f"/_runs/{run_id}").json()
        runs = c.get("/_runs").json()["runs"]
    assert record["state"] == "succeeded"
    assert [r["id"] for r in runs] == [run_id]  # the refused request made no run


def test_sigterm_cancels_a_run_longer_than_the_drain_deadline_and_records_why(server):
    """With RUNNER_DRAIN_TIMEOUT=1, a 20 s run is cancelled for shutdown, never interrupted."""
    srv = server(None, env={"RUNNER_DRAIN_TIMEOUT": "1"})
    assert srv.proc is not None
    with srv.client() as c:
        run_id = c.post("/py/sleep", params={"seconds": "20"}, headers=ASYNC).json()["id"]
        wait_logged(c, run_id, "start ")
    follower = Follower(srv, run_id)
    follower.start()
    sent = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) in CLEAN_EXIT
    assert time.monotonic() - sent < 5
    assert_clean_log(srv)
    events = follower.events()
    done = done_of(events)
    assert done["state"] == "cancelled"
    assert "shut down" in done["reason"]
    outputs = [e["data"] for e in events if e["event"] == "output"]
    assert "cleaning up after cancel" in outputs

    again = server(srv.state_dir)
    with again.client() as c:
        record = c.get(f"/_runs/{run_id}").json()
        interrupted = c.get("/_runs", params={"state": "interrupted"}).json()["runs"]
        replayed = parse_sse(c.get(f"/_runs/{run_id}/events").text)
    assert record["state"] == "cancelled"
    assert "shut down" in record["reason"]
    assert record["exit_code"] == done["exit_code"] != 0
    assert interrupted == []
    assert done_of(replayed) == done


def test_a_second_sigterm_stops_at_once_and_followers_still_get_done(server):
    """A second SIGTERM skips the drain: the run is cancelled, followers get `done`, exit fast."""
    srv = server(None, env={"RUNNER_DRAIN_TIMEOUT": "30"})
    assert srv.proc is not None
    with srv.client() as c:
        run_id = c.post("/py/sleep", params={"seconds": "20"}, headers=ASYNC).json()["id"]
        wait_logged(c, run_id, "start ")
        follower = Follower(srv, run_id)
        follower.start()
        srv.proc.send_signal(signal.SIGTERM)
        wait_draining(c)
    sent = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) in CLEAN_EXIT
    took = time.monotonic() - sent
    follower.join(10)
    assert follower.error is None, follower.error
    assert done_of(parse_sse(follower.text))["state"] == "cancelled"
    assert took < 3, f"took {took:.1f} s to stop after the second SIGTERM"


def test_a_drain_leaves_queued_runs_queued_and_the_next_start_runs_them(serve):
    """Draining lets the running run finish, keeps queued ones in the store for the next start."""
    srv = serve(max_running=1)
    with srv.client() as c:
        first = c.post("/py/sleep", params={"seconds": "0.5"}, headers=ASYNC).json()["id"]
        queued = c.post("/py/lines", params={"n": "3"}, headers=ASYNC).json()["id"]
        assert c.get(f"/_runs/{queued}").json()["state"] == "queued"
        assert srv.server is not None and srv.server._loop is not None
        drained = asyncio.run_coroutine_threadsafe(srv.server.drain(), srv.server._loop)
        wait_draining(c)
        drained.result(10)
    assert srv.thread is not None
    srv.thread.join(10)
    assert not srv.thread.is_alive(), "the server did not stop after its drain"

    again = serve(state_dir=srv.state_dir, max_running=1)
    with again.client() as c:
        assert c.get(f"/_runs/{first}").json()["state"] == "succeeded"
        run = wait_final(c, queued)
        events = parse_sse(c.get(f"/_runs/{queued}/events").text)
    assert run["state"] == "succeeded"
    assert [e["data"] for e in events if e["event"] == "output"] == ["line 1", "line 2", "line 3"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))


def start_with_jobs(tmp_path: Path, *folders: Path) -> subprocess.CompletedProcess[str]:
    """``runner serve`` on these job folders only; expected to refuse to start."""
    cmd = [sys.executable, "-m", "runner", "serve", "--port", "0"]
    cmd += ["--state-dir", str(tmp_path / "state")]
    for folder in folders:
        cmd += ["--jobs", str(folder)]
    env = {**os.environ, "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_FORMAT": "json"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=20)


def write(path: Path, text: str, *, executable: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(0o755)
    return path.resolve()


def test_serve_refuses_two_job_files_claiming_one_path_naming_both(tmp_path):
    """Two files claiming one path (two folders, or a .py and a script) stop start-up, named."""
    a = write(tmp_path / "a" / "deploy" / "site.py", GOOD_JOB)
    b = write(tmp_path / "b" / "deploy" / "site.py", GOOD_JOB)
    c = write(tmp_path / "b" / "tool.py", GOOD_JOB)
    d = write(tmp_path / "b" / "tool.sh", "#!/bin/sh\necho hi\n", executable=True)
    done = start_with_jobs(tmp_path, tmp_path / "a", tmp_path / "b")
    assert done.returncode != 0
    assert "listening" not in done.stdout
    assert "/deploy/site is claimed by two files" in done.stderr
    assert "/tool is claimed by two files" in done.stderr
    for file in (a, b, c, d):
        assert str(file) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state" / "runner.db").exists()


def test_serve_refuses_job_names_that_break_the_rules_naming_each_file(tmp_path):
    """Upper case, dots and spaces in job paths stop start-up; stderr names each bad file."""
    jobs = tmp_path / "jobs"
    write(jobs / "ok.py", GOOD_JOB)
    bad = [
        write(jobs / "Deploy.py", GOOD_JOB),
        write(jobs / "my.job.py", GOOD_JOB),
        write(jobs / "Team" / "site.py", GOOD_JOB),
        write(jobs / "run me.sh", "#!/bin/sh\necho hi\n", executable=True),
    ]
    done = start_with_jobs(tmp_path, jobs)
    assert done.returncode != 0
    assert "listening" not in done.stdout
    assert "cannot serve these jobs" in done.stderr
    for file in bad:
        assert str(file) in done.stderr
    assert str((jobs / "ok.py").resolve()) not in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_start_failure_message_is_one_readable_block(tmp_path):
    """The refusal is plain text on stderr (not a JSON log line), so an operator can read it."""
    write(tmp_path / "jobs" / "Bad.py", GOOD_JOB)
    done = start_with_jobs(tmp_path, tmp_path / "jobs")
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith("runner: cannot serve these jobs")
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)


def test_a_server_starting_leaves_a_live_runner_run_on_its_state_dir_alone(tmp_path, server):
    """A server started while `runner run` runs on the same state dir does not interrupt it.
    (py/lines takes no lock key: `runner run` of a job that does holds the state dir's lock,
    and a server is refused beside it, tests/kinds/test_statedir.py.)"""
    state = tmp_path / "shared"
    cmd = [sys.executable, "-m", "runner", "run", "py/lines", "n=3", "every=1", "pause=1"]
    cmd += ["--state-dir", str(state), "--jobs", str(TEST_JOBS)]
    env = {**os.environ, "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_FORMAT": "json"}
    cli = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=ROOT, env=env
    )
    with cli:
        assert cli.stdout is not None
        assert cli.stdout.readline().startswith(b"line 1")
        srv = server(state)
        try:
            _, err = cli.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            cli.kill()
            cli.communicate()
            pytest.fail("`runner run` hung once the server had marked its run interrupted")
    assert cli.returncode == 0, err
    with srv.client() as c:
        (run,) = c.get("/_runs").json()["runs"]
        events = parse_sse(c.get(f"/_runs/{run['id']}/events").text)
    assert run["state"] == "succeeded"
    assert done_of(events)["state"] == "succeeded"


def test_a_server_beside_a_runner_run_holding_lock_keys_is_refused_and_the_run_goes_on(
    tmp_path, server
):
    """`runner run` of a job with a lock key hands out the state dir's lock keys: a server
    started beside it exits 2 naming that pid, and the run ends as it would have."""
    state = tmp_path / "shared"
    # Long enough for a server to start beside it on a loaded machine (a parallel suite:
    # with 1 s the run had ended, and the lock keys were free again, before it asked).
    cmd = [sys.executable, "-m", "runner", "run", "py/sleep", "seconds=6"]
    cmd += ["--state-dir", str(state), "--jobs", str(TEST_JOBS)]
    env = {**os.environ, "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_FORMAT": "json"}
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=ROOT, env=env
    ) as cli:
        assert cli.stdout is not None
        assert cli.stdout.readline().startswith(b"start ")
        with pytest.raises(AssertionError) as refused:
            server(state)
        out, err = cli.communicate(timeout=15)
    assert f"another runner process (pid {cli.pid}) serves the state dir" in str(refused.value)
    assert cli.returncode == 0, err
    assert out.startswith(b"end ")

"""A server killed with ``kill -9``: what a client saw is stored, and the next start recovers.

Every test runs ``runner serve`` as a subprocess (``serve_process``), kills it with SIGKILL
and starts a new one on the same state directory.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx
import pytest

from tests.conftest import Served, done_of, files_containing, parse_sse, wait_final, wait_logged


@pytest.fixture
def server(serve_process):
    """``runner serve`` processes (conftest's ``serve_process``)."""
    return serve_process


ASYNC = {"Prefer": "respond-async"}


def kill9(srv: Served) -> None:
    """SIGKILL the server process and reap it."""
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)


def replay(c: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """Every stored event of a finished run, through the SSE endpoint."""
    r = c.get(f"/_runs/{run_id}/events")
    assert r.status_code == 200
    return parse_sse(r.text)


def complete_lines(mode: str, text: str) -> tuple[list[str], str]:
    """The output lines in the complete part of a stream's text, and the incomplete rest."""
    if mode == "sse":
        frames, _, rest = text.rpartition("\n\n")
        return [e["data"] for e in parse_sse(frames) if e.get("event") == "output"], rest
    lines, _, rest = text.rpartition("\n")
    return [line for line in lines.split("\n") if line.startswith("line ")], rest


@pytest.mark.parametrize("mode", ["sse", "text"])
def test_kill_9_mid_run_keeps_every_line_a_client_saw_and_marks_the_run_interrupted(server, mode):
    """After kill -9, the restarted server's stored log holds every line the client received."""
    srv = server()
    seen: list[str] = []
    accept = "text/event-stream" if mode == "sse" else "*/*"
    with (
        srv.client() as c,
        c.stream(
            "POST",
            "/py/lines",
            params={"n": "100000", "every": "5", "pause": "0.01"},
            headers={"Accept": accept},
        ) as r,
    ):
        run_id = r.headers["x-run-id"]
        buf = ""
        try:
            for chunk in r.iter_text():
                lines, buf = complete_lines(mode, buf + chunk)
                seen += lines
                if len(seen) >= 50 and srv.proc is not None and srv.proc.poll() is None:
                    kill9(srv)
        except httpx.TransportError:
            pass  # the connection dies with the server
    assert srv.proc is not None and srv.proc.returncode == -signal.SIGKILL
    assert len(seen) >= 50
    assert seen == [f"line {i}" for i in range(1, len(seen) + 1)]

    again = server(srv.state_dir)
    with again.client() as c:
        events = replay(c, run_id)
        record = c.get(f"/_runs/{run_id}").json()
        log = c.get(f"/_runs/{run_id}/log").text.splitlines()
    stored = [e["data"] for e in events if e["event"] == "output"]
    assert stored[: len(seen)] == seen  # stored ⊇ seen, in order
    assert set(seen) <= set(log)
    done = done_of(events)
    assert done["state"] == "interrupted"
    assert done["exit_code"] is None
    assert events[-1]["event"] == "done"
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert record["state"] == "interrupted"
    assert record["exit_code"] is None
    assert log[-1] == (
        f"runner: run={run_id} state=interrupted exit=- duration={done['duration'] or 0:.3f}s"
    )


def test_queued_runs_survive_kill_9_and_run_after_restart(server):
    """Runs waiting in the queue at kill -9 run to success after restart; the running one is
    interrupted."""
    srv = server(None, env={"RUNNER_MAX_RUNNING": "1"})
    with srv.client() as c:
        long = c.post("/py/sleep", params={"seconds": "20", "key": "a"}, headers=ASYNC)
        assert long.status_code == 202
        long_id = long.json()["id"]
        wait_logged(c, long_id, "start ")
        queued = []
        for n in (2, 3):
            r = c.post("/py/lines", params={"n": str(n)}, headers=ASYNC)
            assert r.status_code == 202
            queued.append(r.json()["id"])
        for run_id in queued:
            assert c.get(f"/_runs/{run_id}").json()["state"] == "queued"
    kill9(srv)

    again = server(srv.state_dir, env={"RUNNER_MAX_RUNNING": "1"})
    with again.client() as c:
        interrupted = wait_final(c, long_id)
        assert interrupted["state"] == "interrupted"
        assert interrupted["exit_code"] is None
        assert done_of(replay(c, long_id))["state"] == "interrupted"
        finished = []
        for run_id, n in zip(queued, (2, 3), strict=True):
            run = wait_final(c, run_id)
            finished.append(run)
            assert run["state"] == "succeeded", run
            assert run["exit_code"] == 0
            events = replay(c, run_id)
            assert [e["data"] for e in events if e["event"] == "output"] == [
                f"line {i}" for i in range(1, n + 1)
            ]
            assert [e["id"] for e in events] == list(range(1, len(events) + 1))
            assert done_of(events)["state"] == "succeeded"
    # Still one at a time, oldest first.
    assert finished[0]["finished"] <= finished[1]["started"]


def test_a_queued_run_with_a_secret_is_interrupted_at_restart_and_asks_to_start_again(server):
    """Secrets are never stored, so a queued run that had one cannot resume after kill -9."""
    srv = server(None, env={"RUNNER_MAX_RUNNING": "1"})
    with srv.client() as c:
        long = c.post("/py/sleep", params={"seconds": "20"}, headers=ASYNC)
        long_id = long.json()["id"]
        wait_logged(c, long_id, "start ")
        r = c.post("/py/secret", params={"user": "ann", "pw": "hunter2-s3cret"}, headers=ASYNC)
        assert r.status_code == 202
        secret_id = r.json()["id"]
        assert c.get(f"/_runs/{secret_id}").json()["state"] == "queued"
    kill9(srv)

    again = server(srv.state_dir, env={"RUNNER_MAX_RUNNING": "1"})
    with again.client() as c:
        run = wait_final(c, secret_id)
        events = replay(c, secret_id)
    assert run["state"] == "interrupted"
    assert "start it again" in run["reason"]
    done = done_of(events)
    assert done["state"] == "interrupted"
    assert "start it again" in done["reason"]
    assert not [e for e in events if e["event"] == "output"]
    assert json.loads(events[0]["data"])["params"]["pw"] != "hunter2-s3cret"
    for f in srv.state_dir.glob("runner.db*"):
        assert b"hunter2-s3cret" not in f.read_bytes()


def test_a_zombie_holds_no_lease():
    """A runner process killed but not yet reaped (a zombie) counts as gone: its runs are
    taken over at the next start instead of staying `running` for ever."""
    import subprocess
    import sys
    import time

    from runner import lease

    def stat(pid: int) -> list[str]:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        owner = f"{lease._process().split(':')[0]}:{child.pid}:{stat(child.pid)[19]}:1"
        assert lease.alive(owner)
        child.kill()
        deadline = time.monotonic() + 5
        while stat(child.pid)[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not lease.alive(owner), "a zombie was taken for a live runner"
    finally:
        child.kill()
        child.wait()


def test_a_queued_scripts_body_survives_kill_9(server):
    """A webhook-style script queued with a body runs with that body ($1) after a kill -9
    and restart; a body the script declares secret is not kept: that run is interrupted,
    asking to start again."""
    srv = server(None, env={"RUNNER_MAX_RUNNING": "1"})
    with srv.client() as c:
        long = c.post("/py/sleep", params={"seconds": "20", "key": "a"}, headers=ASYNC).json()
        wait_logged(c, long["id"], "start ")
        queued = c.post("/sh/echo", content=b"payload-42", headers=ASYNC).json()
        secret = c.post("/sh/secretbody", content=b"hunter2-body", headers=ASYNC).json()
    kill9(srv)
    again = server(srv.state_dir, env={"RUNNER_MAX_RUNNING": "1"})
    with again.client() as c:
        ran = wait_final(c, queued["id"], within=30)
        log = c.get(f"/_runs/{queued['id']}/log").text
        refused = wait_final(c, secret["id"], within=30)
    assert ran["state"] == "succeeded" and "body=payload-42" in log
    assert refused["state"] == "interrupted"
    assert refused["reason"] == "secrets are never stored, so it cannot resume; start it again"
    assert files_containing(srv.state_dir, b"hunter2-body") == []

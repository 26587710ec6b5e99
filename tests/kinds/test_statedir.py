"""Issue 15, item 3: lock keys stay exclusive after a kill -9 of the server, and one state
dir has one server (``runner run`` beside it still works)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, wait_final, wait_logged
from tests.kinds.conftest import KIND_JOBS, running

ASYNC = {"Prefer": "respond-async"}


def _beats(file: Path) -> dict[int, list[float]]:
    """Heartbeat times by pid."""
    beats: dict[int, list[float]] = {}
    for line in file.read_text().splitlines():
        when, pid = line.split()
        beats.setdefault(int(pid), []).append(float(when))
    return beats


def test_after_kill_9_the_next_server_gives_a_lock_key_away_only_once_its_script_is_gone(
    reaped_server, tmp_path
):
    """A script holding lock key `beat` when its server is killed is ended before the next
    server runs another `beat` run: their heartbeats never overlap."""
    beat = tmp_path / "beats"
    first = reaped_server()
    with first.served.client() as c:
        old = c.post("/sh/heartbeat", params={"file": str(beat)}, headers=ASYNC).json()["id"]
        wait_logged(c, old, "pid ")
        time.sleep(0.2)
    first.kill9_server()
    second = reaped_server(first.served.state_dir)
    with second.served.client() as c:
        assert c.get(f"/_runs/{old}").json()["state"] == "interrupted"
        new = c.post("/sh/heartbeat", params={"file": str(beat)}, headers=ASYNC).json()["id"]
        wait_logged(c, new, "pid ")
        time.sleep(0.3)
        c.post(f"/_runs/{new}/cancel")
        wait_final(c, new)
    first.wait_empty()
    (old_pid, old_beats), (new_pid, new_beats) = sorted(
        _beats(beat).items(), key=lambda kv: kv[1][0]
    )
    assert not running(old_pid)
    assert max(old_beats) < min(new_beats), "the orphan of the killed server still ran"


def test_a_second_server_on_a_state_dir_is_refused_and_told_which_serves_it(reaped_server):
    """`runner serve` on a state dir that a live server serves exits 2 naming its pid."""
    first = reaped_server()
    cmd = [sys.executable, "-m", "runner", "serve", "--port", "0", "--jobs", str(KIND_JOBS)]
    cmd += ["--state-dir", str(first.served.state_dir)]
    env = {**os.environ, "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_FORMAT": "json"}
    second = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        out, err = second.communicate(timeout=20)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 2, out + err
    assert f"another runner process (pid {first.server_pid}) serves the state dir" in err
    assert "listening" not in out
    with first.served.client() as c:
        assert c.get("/_ready").status_code == 200


def test_runner_run_beside_a_server_on_its_state_dir_still_works(reaped_server):
    """`runner run` recovers nothing and takes no lock: it runs beside the server."""
    srv = reaped_server()
    cmd = [sys.executable, "-m", "runner", "run", "sh/facts", "code=0"]
    cmd += ["--state-dir", str(srv.served.state_dir), "--jobs", str(KIND_JOBS)]
    env = {**os.environ, "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_FORMAT": "json"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pid ")
    with srv.served.client() as c:
        runs = c.get("/_runs").json()["runs"]
    assert [r["state"] for r in runs] == ["succeeded"]


def test_runner_run_of_a_lock_key_job_beside_a_server_is_refused_in_words(reaped_server):
    """Lock keys are handed out by one process per state dir: `runner run` of a job with
    one, beside a server, is refused (exit 2) and told to go through the server; no run."""
    srv = reaped_server()
    cmd = [sys.executable, "-m", "runner", "run", "sh/heartbeat", "file=/dev/null"]
    cmd += ["--state-dir", str(srv.served.state_dir), "--jobs", str(KIND_JOBS)]
    env = {**os.environ, "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_FORMAT": "json"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"another runner process (pid {srv.server_pid}) serves the state dir" in done.stderr
    assert "/sh/heartbeat takes a lock key" in done.stderr
    assert "runner call sh/heartbeat" in done.stderr
    with srv.served.client() as c:
        assert c.get("/_runs").json()["runs"] == []

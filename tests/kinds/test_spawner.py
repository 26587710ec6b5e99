"""What a script gets from the spawner and its shepherds (issue 13), through a real server:
its own session, its folder, no fd of the runner, its exact exit status, and an end —
timeout, cancel, a crash of a shepherd or of the spawner — that leaves none of its
processes behind."""

from __future__ import annotations

import os
import re
import signal
import time

from tests.conftest import wait_final, wait_logged
from tests.kinds.conftest import KIND_JOBS, children, running, tree, wait_gone

RESULT = re.compile(r"^runner: run=(\S+) state=(\S+) exit=(\S+) duration=([\d.]+)s$")
ASYNC = {"Prefer": "respond-async"}


def _result(text: str) -> tuple[str, str]:
    match = RESULT.match(text.splitlines()[-1])
    assert match, text
    return match.group(2), match.group(3)


def _pids(text: str, word: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith(word + " ")]


def test_a_script_runs_in_its_own_session_in_its_folder_with_no_fd_of_the_runner(serve):
    """The script leads its own session and group, runs in its folder, and has open only
    /dev/null, its two output pipes and (the shell's own) its file."""
    srv = serve(jobs=(KIND_JOBS,))
    with srv.client() as c:
        text = c.post("/sh/facts").text
    facts = dict(line.split(" ", 1) for line in text.splitlines()[:-1])
    pid, _, pgid, _, sid = facts["pid"].split()
    assert pid == pgid == sid
    assert facts["cwd"] == str(KIND_JOBS / "sh")
    fds = dict(line.split(" ", 2)[1:] for line in text.splitlines() if line.startswith("fd "))
    # The shell's glob of /proc/$$/fd lists the directory it reads, closed once read.
    fds = {fd: target for fd, target in fds.items() if target}
    assert fds["0"] == "/dev/null"
    assert fds["1"].startswith("pipe:") and fds["2"].startswith("pipe:") and fds["1"] != fds["2"]
    others = {fd: target for fd, target in fds.items() if fd not in ("0", "1", "2")}
    assert set(others.values()) <= {str(KIND_JOBS / "sh" / "facts.sh")}, others
    assert _result(text) == ("succeeded", "0")


def test_the_exit_status_is_the_scripts_own_and_a_signal_is_128_plus_its_number(serve):
    """exit 3 is 3; death by SIGKILL is 137 and by SIGTERM 143, both failed."""
    srv = serve(jobs=(KIND_JOBS,))
    with srv.client() as c:
        assert _result(c.post("/sh/facts?code=3").text) == ("failed", "3")
        assert _result(c.post("/sh/facts?sig=KILL").text) == ("failed", "137")
        assert _result(c.post("/sh/facts?sig=TERM").text) == ("failed", "143")


def test_a_timeout_kills_a_script_that_ignores_sigterm_and_what_left_its_session(serve):
    """SIGTERM, then SIGKILL after kill_grace: the script, its children and the child that
    left its session with setsid are all gone, and the run is timed_out."""
    srv = serve(jobs=(KIND_JOBS,), kill_grace=0.5)
    t0 = time.monotonic()
    with srv.client() as c:
        text = c.post("/sh/stubborn?_timeout=0.5").text
    assert time.monotonic() - t0 < 5
    assert _result(text) == ("timed_out", "124")
    wait_gone(_pids(text, "escaped") + _pids(text, "pid"), within=3)


def test_a_cancel_ends_every_process_of_the_run_too(serve):
    """Cancelling a script that ignores SIGTERM ends it and all it started; cancelled 130."""
    srv = serve(jobs=(KIND_JOBS,), kill_grace=0.5)
    with srv.client() as c:
        run_id = c.post("/sh/stubborn", headers=ASYNC).json()["id"]
        wait_logged(c, run_id, "pid ")
        text = c.get(f"/_runs/{run_id}/log").text
        assert c.post(f"/_runs/{run_id}/cancel").json()["state"] == "cancelled"
        run = wait_final(c, run_id)
    assert run["exit_code"] == 130
    wait_gone(_pids(text, "escaped") + _pids(text, "pid"), within=3)


def _spawner_pid(srv) -> int:
    pid = srv.server.executor.host.spawner.pid
    assert pid is not None
    return pid


def test_kill_9_of_a_shepherd_fails_its_run_with_a_reason_ends_its_script_and_the_next_run_works(
    serve,
):
    """The spawner ends what a dead shepherd leaves; the run says why it failed."""
    srv = serve(jobs=(KIND_JOBS,))
    with srv.client() as c:
        run_id = c.post("/sh/stubborn", headers=ASYNC).json()["id"]
        wait_logged(c, run_id, "pid ")
        text = c.get(f"/_runs/{run_id}/log").text
        scripts = _pids(text, "pid") + _pids(text, "escaped")
        busy = [p for p in children(_spawner_pid(srv)) if children(p)]
        assert len(busy) == 1
        os.kill(busy[0], signal.SIGKILL)
        run = wait_final(c, run_id)
        wait_gone(scripts, within=3)
        again = c.post("/sh/facts").text
    assert run["state"] == "failed"
    assert "supervised this script died" in run["reason"]
    assert _result(again) == ("succeeded", "0")


def test_kill_9_of_the_spawner_lets_runs_in_flight_finish_and_the_next_run_works(reaped_server):
    """Shepherds talk to the server directly: a run in flight ends as it would have; a new
    spawner takes the next run; the old shepherds quit once idle — nothing is left over."""
    reaped = reaped_server()
    with reaped.served.client() as c:
        run_id = c.post("/sh/slow", headers=ASYNC).json()["id"]
        wait_logged(c, run_id, "start")
        old = reaped.spawner_pid()
        old_shepherds = children(old)
        os.kill(old, signal.SIGKILL)
        run = wait_final(c, run_id)
        log = c.get(f"/_runs/{run_id}/log").text.splitlines()
        again = c.post("/sh/facts").text
        assert reaped.spawner_pid() != old
        wait_gone(old_shepherds, within=5)
    assert run["state"] == "succeeded"
    assert log[:2] == ["start", "end"]
    assert _result(again) == ("succeeded", "0")
    reaped.served.stop()
    assert reaped.wait_empty() == 0


def test_kill_9_of_the_server_leaves_no_orphan_and_no_zombie(reaped_server):
    """After a kill -9 of the server, its shepherds end their scripts (SIGTERM, SIGKILL
    after kill_grace) — those that ignore SIGTERM or left their session too — and every
    process of it ends and is reaped."""
    reaped = reaped_server()
    with reaped.served.client() as c:
        run_id = c.post("/sh/stubborn", headers=ASYNC).json()["id"]
        wait_logged(c, run_id, "pid ")
        text = c.get(f"/_runs/{run_id}/log").text
    scripts = _pids(text, "pid") + _pids(text, "escaped")
    everything = tree(reaped.reaper.pid)
    assert all(running(p) for p in scripts)
    reaped.kill9_server()
    reaped.wait_empty(within=10)  # the reaper ends once nothing is left under it
    assert not [p for p in everything if os.path.exists(f"/proc/{p}")]

"""`runner call`: start, follow through cut connections and restarts, exit with the code."""

from __future__ import annotations

import signal
import subprocess
import time

from tests.client.conftest import call_cmd, client_env
from tests.conftest import wait_final

LINES = ["n=240", "every=20", "pause=0.05"]  # 240 lines over about 0.6 s


def expected(n: int = 240) -> list[str]:
    return [f"line {i}" for i in range(1, n + 1)]


def running_run(srv, job: str, within: float = 10) -> str:
    """The id of the newest run of ``job``, once it is running."""
    deadline = time.monotonic() + within
    with srv.client() as c:
        while time.monotonic() < deadline:
            runs = c.get("/_runs", params={"job": job, "state": "running"}).json()["runs"]
            if runs:
                return str(runs[0]["id"])
            time.sleep(0.05)
    raise AssertionError(f"no running run of {job}")


def test_every_line_arrives_once_in_order_through_a_proxy_that_keeps_cutting(serve, proxy, call):
    """Cut after every 3 KB, the client resumes each time and prints each line once."""
    srv = serve()
    cutter = proxy(srv, cut_after=3000)
    done = call(srv, "py/lines", *LINES, port=cutter.port)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected()
    assert cutter.cuts >= 3
    assert "state=succeeded exit=0" in done.stderr


def test_a_failed_run_exits_with_its_own_code_through_timed_cuts(serve, proxy, call):
    """A job that fails with 3, its connection cut every 0.3 s: the client exits 3."""
    srv = serve()
    cutter = proxy(srv, cut_every=0.3)
    done = call(srv, "py/fail", "how=joberror", port=cutter.port)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["about to fail"]
    assert "the deployment target refused the change" in done.stderr


def test_a_run_cancelled_from_another_terminal_exits_130(serve, proxy, tmp_path):
    """Cancelled through the API while the client follows (through cuts): exit 130."""
    srv = serve()
    cutter = proxy(srv, cut_every=0.5)
    with subprocess.Popen(
        call_cmd("py/sleep", "seconds=30"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=client_env(srv, cutter.port), cwd=tmp_path,
    ) as proc:  # fmt: skip
        run_id = running_run(srv, "py/sleep")
        with srv.client() as c:
            assert c.post(f"/_runs/{run_id}/cancel").status_code == 200
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "cleaning up after cancel" in out
    assert f"run={run_id} state=cancelled" in err


def test_a_run_that_times_out_exits_124(serve, call):
    """--timeout 1 on a 30 s job: timed out, exit 124."""
    srv = serve()
    done = call(srv, "py/sleep", "seconds=30", "--timeout", "1")
    assert done.returncode == 124, done.stderr
    assert "state=timed_out exit=124" in done.stderr


def test_a_server_killed_and_restarted_ends_the_run_interrupted_exit_75(
    serve_process, proxy, tmp_path
):
    """kill -9 mid-run, restart on the same state dir elsewhere: the client, reconnecting
    through the proxy, gets the run's end (interrupted) and exits 75, each line once."""
    srv = serve_process(tmp_path / "state")
    cutter = proxy(srv)
    with subprocess.Popen(
        call_cmd("py/lines", "n=1000", "every=1", "pause=0.02"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=client_env(srv, cutter.port), cwd=tmp_path,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        seen = [proc.stdout.readline().strip() for _ in range(5)]
        assert seen == expected(5)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        again = serve_process(tmp_path / "state")
        cutter.upstream_port = int(again.url.rsplit(":", 1)[1])
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    lines = seen + out.splitlines()
    assert lines == expected(len(lines)), "a line was lost or printed twice"
    assert "state=interrupted" in err


def test_a_refusal_exits_64_with_the_problem_in_words_and_no_server_exits_69(serve, call):
    """Bad parameters: 64 and each problem named; a server that is not there: 69."""
    srv = serve()
    refused = call(srv, "py/echo", "rg=BAD")
    assert refused.returncode == 64
    assert "Invalid parameters (422)" in refused.stderr and "rg:" in refused.stderr
    gone = call(srv, "py/echo", "rg=a", "--tries", "2", port=1)
    assert gone.returncode == 69
    assert "no answer from https://127.0.0.1:1 after 2 tries" in gone.stderr


def test_ctrl_c_without_a_terminal_detaches_and_the_run_goes_on(serve, tmp_path):
    """SIGINT in a CI step: the client says where the run is and exits 130; it runs on."""
    srv = serve()
    with subprocess.Popen(
        call_cmd("py/sleep", "seconds=3"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=client_env(srv), cwd=tmp_path,
    ) as proc:  # fmt: skip
        run_id = running_run(srv, "py/sleep")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert f"detached; run {run_id} goes on: {srv.url}/_runs/{run_id}" in err
    with srv.client() as c:
        assert wait_final(c, run_id)["state"] == "succeeded"


def test_one_idempotency_key_runs_once_and_the_repeat_shows_the_same_run(serve, call):
    """Two calls with one key: one run; the second follows it and prints the same lines."""
    srv = serve()
    first = call(srv, "py/lines", "n=3", "--idempotency-key", "deploy-42")
    second = call(srv, "py/lines", "n=3", "--idempotency-key", "deploy-42")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout == "line 1\nline 2\nline 3\n"
    with srv.client() as c:
        assert len(c.get("/_runs", params={"job": "py/lines"}).json()["runs"]) == 1
    other = call(srv, "py/lines", "n=4", "--idempotency-key", "deploy-42")
    assert other.returncode == 64 and "Idempotency-Key" in other.stderr


def test_async_prints_the_run_id_and_logs_follow_exits_with_its_code(serve, call, tmp_path):
    """--async returns the id at once; `runner logs ID --follow` remote exits with 3."""
    srv = serve()
    started = call(srv, "py/fail", "how=joberror", "--async")
    assert started.returncode == 0
    run_id = started.stdout.strip()
    follow = subprocess.run(
        [*call_cmd()[:-1], "logs", run_id, "--follow"], capture_output=True, text=True,
        env=client_env(srv), cwd=tmp_path, timeout=30, check=False,
    )  # fmt: skip
    assert follow.returncode == 3, follow.stderr
    assert follow.stdout.splitlines() == ["about to fail"]
    listed = subprocess.run(
        [*call_cmd()[:-1], "runs", "--json"], capture_output=True, text=True,
        env=client_env(srv), cwd=tmp_path, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert run_id in listed
    cancelled = subprocess.run(
        [*call_cmd()[:-1], "cancel", run_id], capture_output=True, text=True,
        env=client_env(srv), cwd=tmp_path, timeout=30, check=False,
    )  # fmt: skip
    assert cancelled.returncode == 64 and "already ended" in cancelled.stderr

"""Replicas: two or three real ``runner serve`` processes on one PostgreSQL store.

What a user of a load-balanced deployment sees: any replica follows any run live and
resumes it; a killed replica's run is marked interrupted by a peer and its queued runs run
elsewhere; lock keys hold across replicas; cancel and webhook redeliveries work wherever
they land; SIGTERM drains one replica while the others serve.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Served, first_events, parse_sse, wait_final
from tests.webhooks.signing import github_headers

pytestmark = pytest.mark.slow

LEASE = 2.0  # lease_timeout of the tests' replicas: short, to keep them fast
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def replicas(serve_process, pg_database, tmp_path):
    """Factory: start ``n`` replicas on one fresh database; each its own state dir."""
    count = 0

    def start(n: int = 2, **settings: Any) -> list[Served]:
        nonlocal count
        env = {
            "RUNNER_STORE": pg_database,
            "RUNNER_LEASE_TIMEOUT": str(LEASE),
            "RUNNER_JOB_RESCAN": "0",
            **{f"RUNNER_{k.upper()}": str(v) for k, v in settings.items()},
        }
        out = []
        for _ in range(n):
            count += 1
            out.append(serve_process(tmp_path / f"r{count}", env=env))
        return out

    return start


def _start(srv: Served, job: str, **params: Any) -> str:
    with srv.client() as c:
        r = c.post(f"/{job}", params=params, headers=ASYNC)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def _state(srv: Served, run_id: str) -> dict[str, Any]:
    with srv.client() as c:
        return dict(c.get(f"/_runs/{run_id}").json())


def test_a_run_started_on_a_is_followed_live_on_b_and_resumed_on_c_exactly_once(replicas):
    """Live from B while it runs on A, cut, resumed on C with Last-Event-ID: every event
    1..n exactly once, in order, the same as the stored log."""
    a, b, c = replicas(3)
    run_id = _start(a, "py/lines", n=40, every=2, pause=0.05)
    with b.client() as client, client.stream("GET", f"/_runs/{run_id}/events") as r:
        seen = first_events(r, 15)
    assert _state(a, run_id)["state"] == "running", "followed live, not replayed"
    last = seen[-1]["id"]
    with c.client() as client:
        rest = client.get(
            f"/_runs/{run_id}/events", headers={"Last-Event-ID": str(last)}, timeout=30
        )
    seen += parse_sse(rest.text)
    ids = [e["id"] for e in seen if "id" in e]
    assert ids == list(range(1, len(ids) + 1))
    lines = [e["data"] for e in seen if e.get("event") == "output"]
    assert lines == [f"line {i}" for i in range(1, 41)]
    assert [e["event"] for e in seen].count("done") == 1
    assert json.loads(seen[-1]["data"])["state"] == "succeeded"


def test_kill_9_of_a_replica_interrupts_its_run_and_a_survivor_runs_its_queue(replicas):
    """A holds a lock key with a long run and two runs wait for that key; A is killed:
    a peer marks the run interrupted (naming A) within lease_timeout + 5 s, then runs the
    two queued runs; nothing runs twice."""
    (a,) = replicas(1)
    long = _start(a, "py/sleep", seconds=60, key="k9")
    with a.client() as client:
        deadline = time.monotonic() + 10
        while "start" not in client.get(f"/_runs/{long}/log").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    queued = [_start(a, "py/sleep", seconds=0.1, key="k9") for _ in range(2)]
    (b,) = replicas(1)
    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    a.proc.wait(10)
    with b.client() as client:
        run = wait_final(client, long, within=LEASE + 5)
        marked = time.monotonic() - killed
        assert run["state"] == "interrupted", run
        assert "replica" in run["reason"] and ":" in run["reason"], run["reason"]
        for run_id in queued:
            assert wait_final(client, run_id, within=15)["state"] == "succeeded"
        for run_id in [long, *queued]:
            log = client.get(f"/_runs/{run_id}/log").text
            assert log.count("start ") == 1, log
        events = parse_sse(client.get(f"/_runs/{long}/events").text)
    assert [e["event"] for e in events].count("done") == 1
    assert marked <= LEASE + 5


def test_twenty_runs_with_one_lock_key_over_three_replicas_never_overlap(replicas):
    """Runs of one lock key, spread over three replicas, run one at a time: each starts
    after the previous ended (the jobs' own monotonic clock, one machine)."""
    servers = replicas(3)
    ids = [_start(servers[i % 3], "py/sleep", seconds=0.05, key="one") for i in range(20)]
    spans = []
    with servers[0].client() as client:
        for run_id in ids:
            assert wait_final(client, run_id, within=60)["state"] == "succeeded"
            log = client.get(f"/_runs/{run_id}/log").text.split()
            spans.append((float(log[log.index("start") + 1]), float(log[log.index("end") + 1])))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans


def test_cancel_from_a_replica_that_is_not_running_the_run(replicas):
    """A run executing on A is cancelled by a POST to B: B answers with it cancelled."""
    a, b = replicas(2)
    run_id = _start(a, "py/lines", n=1000, every=1, pause=0.05)
    with a.client() as client:
        deadline = time.monotonic() + 10
        while "line 2" not in client.get(f"/_runs/{run_id}/log").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with b.client() as client:
        r = client.post(f"/_runs/{run_id}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "cancelled"
        assert r.json()["reason"] == "cancelled by request"
    assert _state(a, run_id)["state"] == "cancelled"
    # A run waiting in the shared queue (its lock key held) is cancelled from either
    # replica before any claims it: it never starts.
    holder = _start(a, "py/sleep", seconds=30, key="c")
    waiting = _start(a, "py/sleep", seconds=0.1, key="c")
    with b.client() as client:
        r = client.post(f"/_runs/{waiting}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        assert client.post(f"/_runs/{holder}/cancel").json()["state"] == "cancelled"
        assert "start" not in client.get(f"/_runs/{waiting}/log").text
        assert client.post(f"/_runs/{waiting}/cancel").status_code == 409


def test_a_webhook_redelivered_to_another_replica_starts_nothing(
    replicas, tmp_path: Path, monkeypatch
):
    """GitHub redelivers to whichever replica the balancer picks: the second answers with
    the first run, and the history holds one run."""
    config = tmp_path / "runner.toml"
    config.write_text('[jobs."py/echo"]\nverify = "github"\nsecret = "env:GH_HOOK"\n')
    monkeypatch.setenv("GH_HOOK", "s3cret")
    a, b = replicas(2, config=config)
    body = b'{"rg": "web"}'
    headers = {**github_headers(b"s3cret", body), **ASYNC, "Content-Type": "application/json"}
    with a.client() as ca, b.client() as cb:
        first = ca.post("/py/echo", content=body, headers=headers)
        again = cb.post("/py/echo", content=body, headers=headers)
        assert first.status_code == 202, first.text
        assert again.json()["id"] == first.json()["id"]
        runs = cb.get("/_runs", params={"job": "py/echo"}).json()["runs"]
    assert len(runs) == 1


def test_sigterm_drains_one_replica_while_the_others_serve(replicas):
    """A drains on SIGTERM: it stops claiming, its queued runs run on B, B keeps
    answering; A's own running run finishes."""
    a, b = replicas(2, max_running=1, drain_timeout=10)
    busy_a = _start(a, "py/sleep", seconds=1.5, key="a")
    busy_b = _start(b, "py/sleep", seconds=1.5, key="b")
    with a.client() as client:
        for run_id in (busy_a,):
            deadline = time.monotonic() + 10
            while client.get(f"/_runs/{run_id}").json()["state"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    waiting = [_start(a, "py/sleep", seconds=0.05, key=f"w{i}") for i in range(3)]
    assert a.proc is not None
    a.proc.send_signal(signal.SIGTERM)
    with b.client() as client:
        assert client.get("/_ready").status_code == 200
        for run_id in [busy_a, busy_b, *waiting]:
            assert wait_final(client, run_id, within=20)["state"] == "succeeded"
        started = client.post("/py/echo", params={"rg": "still"})
        assert started.status_code == 200
    assert a.proc.wait(20) == 0


def test_workers_share_one_port_on_postgresql(serve_process, pg_cluster, pg_database, tmp_path):
    """``runner serve --workers 2``: one URL, two processes (replicas) serving it; the
    kernel spreads connections, so both hold runs."""
    srv = serve_process(
        tmp_path / "w",
        "--workers",
        "2",
        env={"RUNNER_STORE": pg_database, "RUNNER_LEASE_TIMEOUT": "2"},
    )
    ids = [_start(srv, "py/echo", rg=f"r{i}") for i in range(20)]
    with srv.client() as client:
        for run_id in ids:
            assert wait_final(client, run_id)["state"] == "succeeded"
        with httpx.Client(verify=srv.ssl_context()) as plain:
            assert plain.get(srv.url + "/_health").status_code == 200
    database = urllib.parse.urlsplit(pg_database).path.lstrip("/")
    holders = pg_cluster.psql("SELECT count(DISTINCT owner) FROM runs", database=database)
    assert holders == "2"


def test_workers_are_refused_with_sqlite_in_words(tmp_path):
    """SQLite is one process's file: --workers 2 says so and what to use instead."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "runner", "serve", "--workers", "2", "--port", "0",
         "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--workers 2 needs a PostgreSQL store" in out.stderr
    assert "store = " in out.stderr or "RUNNER_STORE" in out.stderr


def test_runner_run_in_a_terminal_runs_its_own_run_beside_replicas(replicas, pg_database):
    """``runner run`` on the shared store runs its run here (even one with a lock key,
    which waits in the table), takes none of the servers' runs, and ``runner runs``
    lists the history from PostgreSQL."""
    import subprocess
    import sys

    (a,) = replicas(1)
    env = {**os.environ, "RUNNER_STORE": pg_database, "RUNNER_BUILTIN_JOBS": "false"}
    cmd = [sys.executable, "-m", "runner"]
    jobs = ["--jobs", str(Path(__file__).parent / "jobs")]
    out = subprocess.run(
        [*cmd, "run", "py/sleep", "seconds=0.1", "key=term", *jobs],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "start " in out.stdout
    listed = subprocess.run(
        [*cmd, "runs", "--json", *jobs], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip
    runs = json.loads(listed.stdout)
    assert [r["state"] for r in runs] == ["succeeded"]
    assert runs[0]["caller"].startswith("cli:")
    assert _state(a, runs[0]["id"])["state"] == "succeeded"


def test_workers_check_their_settings_before_starting(tmp_path):
    """What --workers refuses, said before any process starts: SQLite, --sandbox, and a
    port another server holds."""
    import socket as sockets

    from runner.errors import ConfigError
    from runner.settings import from_values
    from runner.supervisor import check, reserve

    with pytest.raises(ConfigError, match="SQLite store is one process's"):
        check(from_values({"workers": 2, "state_dir": tmp_path}))
    pg = {"workers": 2, "store": "postgresql://u@/db", "sandbox": True}
    with pytest.raises(ConfigError, match="emulated Azure lives in one process"):
        check(from_values(pg))
    with sockets.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="cannot listen on"):
            reserve("127.0.0.1", taken.getsockname()[1])
    held = reserve("127.0.0.1", 0)
    assert held.getsockname()[1] > 0
    held.close()

"""Limits and control of runs: queue, locks, timeouts, cancellation, sizes."""

from __future__ import annotations

import os
import re
import time

from tests.conftest import done_of, parse_sse
from tests.faults import FaultyStore

RESULT = re.compile(r"^runner: run=(\S+) state=(\S+) exit=(\S+) duration=([\d.]+)s$")


def _wait_state(c, run_id: str, states: set[str], timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while (run := c.get(f"/_runs/{run_id}").json())["state"] not in states:
        assert time.monotonic() < deadline, run
        time.sleep(0.02)
    return run


def test_full_queue_answers_429_with_retry_after(serve):
    """With one slot and one queue place, a third run is refused with 429 and Retry-After."""
    srv = serve(max_running=1, max_queued=1)
    with srv.client() as c:
        async_ = {"Prefer": "respond-async"}
        a = c.post("/py/sleep?seconds=5&key=a", headers=async_)
        b = c.post("/py/sleep?seconds=5&key=b", headers=async_)
        full = c.post("/py/sleep?seconds=5&key=c", headers=async_)
        assert (a.status_code, b.status_code, full.status_code) == (202, 202, 429)
        assert int(full.headers["retry-after"]) >= 1
        assert full.headers["content-type"] == "application/problem+json"
        assert c.get(f"/_runs/{b.json()['id']}").json()["state"] == "queued"
        assert len(c.get("/_runs").json()["runs"]) == 2
        for r in (a, b):
            c.post(f"/_runs/{r.json()['id']}/cancel")


def test_runs_with_one_lock_key_never_overlap(serve):
    """Three runs sharing a lock key run one at a time; another key runs alongside."""
    srv = serve(max_running=8)
    with srv.client() as c:
        ids = [
            c.post("/py/sleep?seconds=0.3&key=same", headers={"Prefer": "respond-async"}).json()[
                "id"
            ]
            for _ in range(3)
        ]
        other = c.post("/py/sleep?seconds=0.3&key=other", headers={"Prefer": "respond-async"})
        assert c.get(f"/_runs/{ids[1]}").json()["lock_key"] == "key:same"
        spans = []
        for run_id in ids + [other.json()["id"]]:
            _wait_state(c, run_id, {"succeeded"})
            log = c.get(f"/_runs/{run_id}/log").text.splitlines()
            lines = [line for line in log if line.startswith(("start ", "end "))]
            start = float(lines[0].split()[1])
            end = float(lines[1].split()[1])
            spans.append((start, end))
    same = sorted(spans[:3])
    for (_, end), (start, _) in zip(same, same[1:], strict=False):
        assert start >= end, same
    # The other key did not wait for the three.
    assert spans[3][0] < same[1][0]


def test_queued_run_tells_why_it_waits(serve):
    """A run waiting for a lock says so in a status event."""
    srv = serve()
    with srv.client() as c:
        first = c.post("/py/sleep?seconds=0.5&key=x", headers={"Prefer": "respond-async"})
        r = c.post("/py/sleep?seconds=0.1&key=x", headers={"Accept": "text/event-stream"})
        c.post(f"/_runs/{first.json()['id']}/cancel")
    events = parse_sse(r.text)
    assert events[1]["event"] == "status"
    assert "waiting for lock key:x" in events[1]["data"]


def test_timeout_ends_a_python_run_as_timed_out(serve):
    """A caller may shorten the timeout; the run ends timed_out with exit code 124."""
    srv = serve()
    with srv.client() as c:
        t0 = time.monotonic()
        r = c.post("/py/sleep?seconds=10&_timeout=0.3")
        took = time.monotonic() - t0
        too_long = c.post("/py/sleep?_timeout=31")
    assert took < 5
    lines = r.text.splitlines()
    assert "cleaning up after cancel" in lines
    assert RESULT.match(lines[-1]).group(2, 3) == ("timed_out", "124")
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0] == {
        "name": "_timeout",
        "reason": "at most 30 seconds for this job",
    }


def test_server_ceiling_caps_every_job(serve):
    """The server's max_timeout is the limit even for a job declaring more."""
    srv = serve(max_timeout=0.5)
    with srv.client() as c:
        r = c.post("/py/sleep?seconds=5")
    assert RESULT.match(r.text.splitlines()[-1]).group(2) == "timed_out"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_cancel_of_a_script_kills_its_whole_process_tree(serve):
    """Cancelling a script run leaves none of its processes behind."""
    srv = serve(kill_grace=1)
    with srv.client() as c, c.stream("POST", "/sh/tree") as r:
        run_id = r.headers["x-run-id"]
        pids = []
        lines = r.iter_lines()
        for line in lines:
            if line.startswith(("child", "parent")):
                pids.append(int(line.split()[1]))
            if len(pids) == 3:
                break
        assert all(_alive(p) for p in pids)
        cancel = c.post(f"/_runs/{run_id}/cancel")
        assert cancel.json()["state"] == "cancelled"
        rest = list(lines)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, [p for p in pids if _alive(p)]
        time.sleep(0.05)
    assert RESULT.match(rest[-1]).group(2, 3) == ("cancelled", "130")


def test_script_timeout_kills_the_tree_too(serve):
    """A script that outlives its timeout is timed_out and its children are gone."""
    srv = serve(kill_grace=1)
    with srv.client() as c:
        r = c.post("/sh/tree?_timeout=0.5")
    pids = [int(line.split()[1]) for line in r.text.splitlines() if line.startswith("child")]
    assert len(pids) == 2
    assert RESULT.match(r.text.splitlines()[-1]).group(2, 3) == ("timed_out", "124")
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_cancel_of_a_python_run_and_of_a_queued_run(serve):
    """Cancel stops a running Python job and removes a queued one; both are recorded."""
    srv = serve(max_running=1)
    with srv.client() as c:
        a = c.post("/py/sleep?seconds=10&key=a", headers={"Prefer": "respond-async"}).json()["id"]
        b = c.post("/py/sleep?seconds=10&key=b", headers={"Prefer": "respond-async"}).json()["id"]
        _wait_state(c, a, {"running"})
        assert c.post(f"/_runs/{b}/cancel").json()["state"] == "cancelled"
        assert c.post(f"/_runs/{a}/cancel").json()["state"] == "cancelled"
        again = c.post(f"/_runs/{a}/cancel")
        events = parse_sse(c.get(f"/_runs/{a}/events").text)
    assert again.status_code == 409
    assert done_of(events)["state"] == "cancelled"
    assert "cleaning up after cancel" in [e["data"] for e in events if e["event"] == "output"]


def test_body_and_parameter_limits(serve):
    """Oversized bodies get 413; too many or too long parameters get 422; no run."""
    srv = serve(max_body_bytes=1000, max_params=3, max_param_bytes=50, max_script_body_bytes=10)
    with srv.client() as c:
        big = c.post("/py/echo", content=b"x" * 2000, headers={"content-type": "application/json"})
        many = c.post("/py/echo?a=1&b=2&c=3&d=4")
        long = c.post("/py/echo", params={"rg": "a" * 51})
        script_body = c.post("/sh/echo", content=b"y" * 11)
        control = c.post("/py/echo", params={"rg": "a\x1b[31m"})
        runs = c.get("/_runs").json()["runs"]
    assert big.status_code == 413
    assert many.status_code == 422
    assert long.json()["errors"] == [{"name": "rg", "reason": "longer than 50 bytes"}]
    assert script_body.status_code == 422
    assert control.json()["errors"] == [{"name": "rg", "reason": "contains control characters"}]
    assert runs == []


def test_script_parameters_cannot_shadow_the_environment(serve):
    """Names such as PATH, home, or http_proxy are refused before any run."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/echo?PATH=/tmp&home=x&http_proxy=y&LD_PRELOAD=z&ok=1")
    assert r.status_code == 422
    names = {e["name"] for e in r.json()["errors"]}
    assert names == {"PATH", "home", "http_proxy", "LD_PRELOAD"}


def test_a_failing_store_answers_503_and_recovers(serve, tmp_path):
    """When the run store cannot write, a new run gets a 503 problem, not a crash."""
    store = FaultyStore(tmp_path / "runner.db")
    srv = serve(store=store)
    store.failing.set()
    try:
        with srv.client() as c:
            r = c.post("/py/echo?rg=a", headers={"Prefer": "respond-async"})
    finally:
        store.failing.clear()
    assert store.failed_writes
    assert r.status_code == 503
    assert r.json()["detail"] == "disk full (simulated)"
    with srv.client() as c:
        assert c.post("/py/echo?rg=a", headers={"Prefer": "wait"}).status_code == 200


def test_lines_written_while_the_store_fails_are_kept_and_stored_when_it_heals(serve, tmp_path):
    """A store outage mid-run loses no line: followers wait, then get every line once."""
    store = FaultyStore(tmp_path / "runner.db", "database is locked (simulated)")
    srv = serve(store=store)
    with srv.client() as c:
        run_id = c.post(
            "/py/lines?n=40&every=4&pause=0.05", headers={"Prefer": "respond-async"}
        ).json()["id"]
        time.sleep(0.1)
        store.failing.set()
        time.sleep(0.4)
        store.failing.clear()
        events = parse_sse(c.get(f"/_runs/{run_id}/events").text)
    failures = store.failed_writes
    assert failures, "the outage did not overlap the run"
    lines = [e["data"] for e in events if e["event"] == "output"]
    assert lines == [f"line {i}" for i in range(1, 41)]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert done_of(events)["state"] == "succeeded"


def test_a_script_body_with_a_nul_byte_is_refused_before_any_run(serve):
    """$1 cannot carry a NUL: such a body is a 422, not a failed run (found by fuzzing)."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/echo", content=b"abc\x00def")
        runs = c.get("/_runs").json()["runs"]
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"name": "body", "reason": "a script's body cannot contain a NUL byte"}
    ]
    assert runs == []

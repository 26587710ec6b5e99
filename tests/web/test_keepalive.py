"""Streams that stay open through silence, and wait mode that answers in time."""

from __future__ import annotations

import time

from tests.conftest import wait_final


def test_text_mode_writes_keepalive_lines_in_silences_that_the_log_does_not_keep(serve):
    """A run silent for 2.5 s (heartbeat 1 s): keepalive lines between its output; the
    stored log has none; the last line is still the result line."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/sleep?seconds=2.5")
        lines = r.text.splitlines()
        log = c.get(f"/_runs/{r.headers['x-run-id']}/log").text
    keepalives = [x for x in lines if x.startswith("runner: … still running, no output for ")]
    assert len(keepalives) >= 2
    assert keepalives[0] == "runner: … still running, no output for 1 s"
    assert lines[-1].startswith("runner: run=") and "state=succeeded" in lines[-1]
    assert "still running" not in log


def test_prefer_wait_n_answers_202_with_location_once_n_seconds_pass(serve):
    """wait=1 on a 3 s run: 202 after about a second, the run goes on and succeeds."""
    srv = serve()
    with srv.client() as c:
        t0 = time.monotonic()
        r = c.post("/py/sleep?seconds=3", headers={"Prefer": "wait=1"})
        took = time.monotonic() - t0
        assert r.status_code == 202
        assert 0.9 <= took < 2.5
        assert r.headers["location"] == f"/_runs/{r.headers['x-run-id']}"
        assert r.headers["preference-applied"] == "respond-async, wait=1"
        assert r.json()["state"] == "running"
        assert wait_final(c, r.headers["x-run-id"])["state"] == "succeeded"


def test_prefer_wait_n_gives_the_whole_output_when_the_run_ends_in_time(serve):
    """respond-async with wait=5 on a short run: the output and its status, not a 202."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/echo?rg=a", headers={"Prefer": "respond-async, wait=5"})
    assert r.status_code == 200
    assert r.headers["preference-applied"] == "wait=5"
    assert r.text.startswith("rg=a size=small flag=False i=0\n")

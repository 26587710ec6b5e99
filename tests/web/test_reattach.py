"""Re-attaching to a run: replay after Last-Event-ID, then follow live, each event once."""

from __future__ import annotations

import json
import time

from tests.conftest import done_of, parse_sse


def _read_some(srv, path: str, headers: dict[str, str], n_events: int) -> str:
    """Read a stream until ``n_events`` frames arrived, then drop the connection."""
    text = ""
    with (
        srv.client() as c,
        c.stream("POST" if not path.startswith("/_") else "GET", path, headers=headers) as r,
    ):
        for chunk in r.iter_text():
            text += chunk
            if text.count("\n\n") >= n_events:
                break
    return text


def test_reattach_after_disconnect_misses_and_repeats_nothing(serve):
    """Drop an SSE stream mid-run, re-attach with Last-Event-ID: ids continue exactly."""
    srv = serve()
    first = _read_some(
        srv, "/py/lines?n=60&every=5&pause=0.05", {"Accept": "text/event-stream"}, 12
    )
    seen = parse_sse(first)
    run_id = json.loads(seen[0]["data"])["id"]
    last = seen[-1]["id"]
    # The run goes on without its caller.
    with srv.client() as c:
        assert c.get(f"/_runs/{run_id}").json()["state"] in ("running", "succeeded")
        rest = parse_sse(
            c.get(f"/_runs/{run_id}/events", headers={"Last-Event-ID": str(last)}).text
        )
    ids = [e["id"] for e in seen] + [e["id"] for e in rest]
    assert ids == list(range(1, ids[-1] + 1))
    lines = [e["data"] for e in seen + rest if e["event"] == "output"]
    assert lines == [f"line {i}" for i in range(1, 61)]
    assert done_of(rest)["state"] == "succeeded"


def test_events_of_a_finished_run_replay_and_close(serve):
    """A finished run's event stream replays everything and ends after done."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a&count=3").headers["x-run-id"]
        t0 = time.monotonic()
        events = parse_sse(c.get(f"/_runs/{run_id}/events").text)
        assert time.monotonic() - t0 < 5
        tail = parse_sse(c.get(f"/_runs/{run_id}/events?last_event_id=4").text)
    assert events[0]["event"] == "run"
    assert events[-1]["event"] == "done"
    assert [e["id"] for e in tail] == list(range(5, events[-1]["id"] + 1))


def test_live_followers_each_get_every_event(serve):
    """Several clients following one run from different points all see the full rest."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post(
            "/py/lines?n=200&every=20&pause=0.02", headers={"Prefer": "respond-async"}
        ).json()["id"]
        streams = [
            c.get(f"/_runs/{run_id}/events", headers={"Last-Event-ID": str(k)}) for k in (0, 3)
        ]
    for k, r in zip((0, 3), streams, strict=True):
        ids = [e["id"] for e in parse_sse(r.text)]
        assert ids == list(range(k + 1, ids[-1] + 1))
        assert parse_sse(r.text)[-1]["event"] == "done"


def test_text_log_of_a_run(serve):
    """GET /_runs/<id>/log is the run's output as text, ending in the result line."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a&count=2").headers["x-run-id"]
        log = c.get(f"/_runs/{run_id}/log")
    assert log.headers["content-type"].startswith("text/plain")
    assert log.text.splitlines()[:2] == [
        "rg=a size=small flag=False i=0",
        "rg=a size=small flag=False i=1",
    ]
    assert log.text.splitlines()[-1].startswith(f"runner: run={run_id} state=succeeded")


def test_run_history_filters_and_pages(serve):
    """GET /_runs filters by job and state, newest first, with a next-page link."""
    srv = serve()
    with srv.client() as c:
        ids = [c.post("/py/echo?rg=a").headers["x-run-id"] for _ in range(3)]
        c.post("/py/fail")
        page = c.get("/_runs?job=py/echo&limit=2").json()
        rest = c.get(page["next"]).json()
        failed = c.get("/_runs?state=failed").json()["runs"]
        bad = c.get("/_runs?state=bogus")
        missing = c.get("/_runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert [r["id"] for r in page["runs"]] == ids[::-1][:2]
    assert [r["id"] for r in rest["runs"]] == ids[:1]
    assert [r["job"] for r in failed] == ["py/fail"]
    assert bad.status_code == 422
    assert missing.status_code == 404


def test_disconnecting_caller_does_not_stop_the_run(serve):
    """A text-mode caller that hangs up leaves its run to finish and be recorded."""
    srv = serve()
    with srv.client() as c, c.stream("POST", "/py/lines?n=30&every=3&pause=0.05") as r:
        run_id = r.headers["x-run-id"]
        next(r.iter_lines())
    deadline = time.monotonic() + 10
    with srv.client() as c:
        while (run := c.get(f"/_runs/{run_id}").json())["state"] != "succeeded":
            assert time.monotonic() < deadline, run
            time.sleep(0.05)
        assert c.get(f"/_runs/{run_id}/log").text.count("line ") == 30


def test_heartbeat_comments_keep_idle_streams_alive(serve):
    """An SSE stream with nothing to say sends comment lines (heartbeat 1 s in tests)."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post("/py/sleep?seconds=2.5&key=hb", headers={"Prefer": "respond-async"}).json()[
            "id"
        ]
        with c.stream("GET", f"/_runs/{run_id}/events", headers={"Last-Event-ID": "3"}) as r:
            text = ""
            for chunk in r.iter_text():
                text += chunk
                if ": ping" in text:
                    break
        c.post(f"/_runs/{run_id}/cancel")
    assert ": ping" in text


def test_log_follow_streams_a_running_run_to_its_end(serve):
    """GET /_runs/<id>/log?follow=1 starts mid-run and ends with the result line."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post(
            "/py/lines?n=20&every=2&pause=0.05", headers={"Prefer": "respond-async"}
        ).json()["id"]
        now = c.get(f"/_runs/{run_id}/log").text
        followed = c.get(f"/_runs/{run_id}/log?follow=1")
    assert "line 20" not in now
    lines = followed.text.splitlines()
    assert lines[:20] == [f"line {i}" for i in range(1, 21)]
    assert lines[-1].startswith(f"runner: run={run_id} state=succeeded")
    assert followed.headers["cache-control"] == "no-store"

"""What a hostile probe found (issue 15), each through the real server."""

from __future__ import annotations

import json
import time

from tests.conftest import files_containing, parse_sse, wait_final

SECRET = "Sup3r-Secret-Value"


def test_a_secret_in_a_failure_message_or_progress_is_masked_everywhere(serve, caplog):
    """The reason (record, done event, text line), the progress line and the server's log
    show *** where the job wrote its secret."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/leak", params={"token": SECRET})
        run_id = r.headers["x-run-id"]
        record = c.get(f"/_runs/{run_id}").json()
        events = c.get(f"/_runs/{run_id}/events").text
        log = c.get(f"/_runs/{run_id}/log").text
    assert SECRET not in r.text + json.dumps(record) + events + log + caplog.text
    assert record["reason"] == "could not log in with password ***"
    assert "runner: logging in with ***" in r.text
    assert files_containing(srv.state_dir, SECRET.encode()) == []


def test_a_lock_key_built_from_a_secret_is_recorded_masked(serve):
    """A script locking on its secret: the record and the waiting message say site:***."""
    srv = serve()
    with srv.client() as c:
        first = c.post("/sh/secretlock", params={"token": SECRET, "seconds": "1"},
                       headers={"Prefer": "respond-async"}).json()  # fmt: skip
        second = c.post("/sh/secretlock", params={"token": SECRET},
                        headers={"Prefer": "respond-async"}).json()  # fmt: skip
        queued = c.get(f"/_runs/{second['id']}/events?last_event_id=0", timeout=20).text
        record = c.get(f"/_runs/{first['id']}").json()
        wait_final(c, first["id"])
    assert record["lock_key"] == "site:***"
    assert "waiting for lock site:***" in queued
    assert SECRET not in queued + json.dumps(record)
    assert files_containing(srv.state_dir, SECRET.encode()) == []


def test_a_multi_line_failure_cannot_forge_an_sse_event(serve):
    """A JobError that spells out an id and a done event stays data of one error event:
    the stream's only done is the real one (failed), and its ids run 1, 2, 3…"""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/leak", params={"token": SECRET, "forge": "true"},
                   headers={"Accept": "text/event-stream"})  # fmt: skip
    events = parse_sse(r.text)
    done = [e for e in events if e.get("event") == "done"]
    assert len(done) == 1 and json.loads(done[0]["data"])["state"] == "failed"
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["id"] != 999 for e in events)


def test_nothing_is_appended_after_done_and_leftover_tasks_are_cancelled(serve, tmp_path):
    """A task the job left running neither prints into the ended run nor goes on acting."""
    srv = serve()
    marker = tmp_path / "marker"
    with srv.client() as c:
        r = c.post("/py/leftover", params={"marker": str(marker)}, headers={"Prefer": "wait"})
        time.sleep(0.6)
        events = parse_sse(c.get(f"/_runs/{r.headers['x-run-id']}/events").text)
        log = c.get(f"/_runs/{r.headers['x-run-id']}/log").text
    assert events[-1]["event"] == "done"
    assert "late line" not in log
    assert not marker.exists(), "the leftover task was not cancelled"

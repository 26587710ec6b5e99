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


def test_a_jobs_allow_list_bounds_who_reads_and_cancels_its_runs(serve, tmp_path):
    """Refused on POST /py/sleep, alice cannot read its runs, their log, or cancel them."""
    from runner.auth.htpasswd import set_password
    from runner.policy import JobPolicy

    htpasswd = tmp_path / "htpasswd"
    set_password(htpasswd, "alice", "alice-pw-123", cost=4)
    set_password(htpasswd, "bob", "bob-pw-12345", cost=4)
    srv = serve(htpasswd=htpasswd, policies=(JobPolicy("py/sleep", allow=("user:bob",)),))
    with srv.client(auth=("bob", "bob-pw-12345")) as c:
        run_id = c.post("/py/sleep?seconds=2", headers={"Prefer": "respond-async"}).json()["id"]
    with srv.client(auth=("alice", "alice-pw-123")) as c:
        seen = [c.get(f"/_runs/{run_id}{tail}").status_code for tail in ("", "/log", "/events")]
        cancel = c.post(f"/_runs/{run_id}/cancel")
        listed = c.get("/_runs").json()["runs"]
    assert seen == [404, 404, 404] and cancel.status_code == 404
    assert listed == []
    with srv.client(auth=("bob", "bob-pw-12345")) as c:
        assert c.post(f"/_runs/{run_id}/cancel").status_code == 200


def test_the_next_link_names_no_run_a_token_cannot_see(serve, tmp_path):
    """Pages of a token's history hold only its jobs' runs, and so does the cursor."""
    from runner.auth.tokens import TokenStore

    srv = serve()
    with srv.client() as c:
        mine = [c.post("/py/echo?rg=a", headers={"Prefer": "wait"}).headers["x-run-id"]
                for _ in range(2)]  # fmt: skip
        hidden = [c.post("/py/lines?n=1", headers={"Prefer": "wait"}).headers["x-run-id"]
                  for _ in range(3)]  # fmt: skip
    token = TokenStore(srv.state_dir / "tokens.json").create("ci", ["py/echo"])
    with srv.client(headers={"Authorization": f"Bearer {token}"}) as c:
        page = c.get("/_runs", params={"limit": 1}).json()
        second = c.get(page["next"]).json()
    assert [r["id"] for r in page["runs"]] == [mine[1]]
    assert not any(h in page["next"] for h in hidden)
    assert [r["id"] for r in second["runs"]] == [mine[0]]

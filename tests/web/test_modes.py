"""Every response mode of ``POST /<job>``, end to end through uvicorn over TLS."""

from __future__ import annotations

import json
import re

from tests.conftest import done_of, parse_sse

RESULT = re.compile(r"^runner: run=(\S+) state=(\S+) exit=(\S+) duration=([\d.]+)s$")


def test_text_mode_streams_lines_then_a_parseable_result_line(serve):
    """curl's default gets text/plain lines and a final line with id, state and exit code."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/echo", params={"rg": "demo", "count": "2"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[:2] == ["rg=demo size=small flag=False i=0", "rg=demo size=small flag=False i=1"]
    m = RESULT.match(lines[-1])
    assert m, lines[-1]
    assert m.group(1) == r.headers["x-run-id"]
    assert m.group(2, 3) == ("succeeded", "0")
    assert r.headers["location"] == f"/_runs/{m.group(1)}"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_text_mode_keeps_stdout_and_stderr_in_order(serve):
    """A script's stdout and stderr lines arrive interleaved as it wrote them."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/echo", params={"name": "bob"}, content=b"the body")
    lines = r.text.splitlines()
    assert lines[:5] == ["name=bob", "err1", "out2", "err2", "body=the body"]
    assert "home-set=yes" in lines


def test_sse_mode_numbers_every_event_and_ends_with_done(serve):
    """Accept: text/event-stream gives run, status, output and done events with ids 1, 2, 3…"""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/echo?rg=x&count=3", headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "run"
    assert json.loads(events[0]["data"])["id"] == r.headers["x-run-id"]
    outputs = [e["data"] for e in events if e["event"] == "output"]
    assert len(outputs) == 3
    assert done_of(events) | {"duration": 0} == {
        "state": "succeeded",
        "exit_code": 0,
        "duration": 0,
        "reason": None,
    }


def test_async_mode_answers_202_at_once_with_links(serve):
    """Prefer: respond-async gets 202, the run id, Location and the events URL."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/sleep?seconds=2&key=a", headers={"Prefer": "respond-async"})
        assert r.status_code == 202
        body = r.json()
        assert r.headers["location"] == f"/_runs/{body['id']}"
        assert body["links"]["events"] == f"/_runs/{body['id']}/events"
        assert c.get(body["links"]["self"]).json()["state"] in ("queued", "running")
        c.post(body["links"]["cancel"])


def test_wait_mode_answers_non_2xx_when_the_run_failed(serve):
    """Prefer: wait returns the whole output; a failed run is a 500 so curl --fail fails."""
    srv = serve()
    with srv.client() as c:
        ok = c.post("/py/echo?rg=a", headers={"Prefer": "wait"})
        bad = c.post("/py/fail?how=joberror", headers={"Prefer": "wait"})
    assert ok.status_code == 200
    assert ok.headers["x-run-state"] == "succeeded"
    assert bad.status_code == 500
    assert bad.headers["x-run-state"] == "failed"
    assert "the deployment target refused the change" in bad.text
    assert RESULT.match(bad.text.splitlines()[-1]).group(2, 3) == ("failed", "3")


def test_mode_query_parameter_overrides_headers(serve):
    """_mode=async wins over an Accept header asking for SSE."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/echo?rg=a&_mode=async", headers={"Accept": "text/event-stream"})
    assert r.status_code == 202


def test_failed_python_job_streams_its_traceback_and_exit_code(serve):
    """An unexpected exception fails the run, with the traceback on the stream."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/fail?how=crash")
        code = c.post("/py/fail?how=code")
    assert "ValueError: something unexpected" in r.text
    assert RESULT.match(r.text.splitlines()[-1]).group(2, 3) == ("failed", "1")
    assert RESULT.match(code.text.splitlines()[-1]).group(2, 3) == ("failed", "7")


def test_script_exit_code_decides_the_state(serve):
    """A script exiting 4 makes a failed run with exit code 4."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/echo?code=4")
    assert RESULT.match(r.text.splitlines()[-1]).group(2, 3) == ("failed", "4")


def test_bad_parameters_get_one_422_naming_each_and_no_run(serve):
    """Every bad parameter is listed in one problem+json answer; nothing is recorded."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/echo?count=99&size=huge&bogus=1&flag=maybe")
        runs = c.get("/_runs").json()["runs"]
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problems = {e["name"]: e["reason"] for e in r.json()["errors"]}
    assert set(problems) == {"rg", "count", "size", "bogus", "flag"}
    assert problems["rg"] == "required"
    assert "unknown parameter" in problems["bogus"]
    assert runs == []


def test_json_and_form_bodies_are_parameters_of_python_jobs(serve):
    """A JSON object body or a form body carries parameters; typed JSON values are kept."""
    srv = serve()
    with srv.client() as c:
        js = c.post("/py/echo", json={"rg": "j", "count": 2, "flag": True})
        form = c.post("/py/echo", data={"rg": "f", "size": "large"})
        twice = c.post("/py/echo?rg=a", json={"rg": "b"})
    assert js.text.startswith("rg=j size=small flag=True i=0\n")
    assert form.text.startswith("rg=f size=large")
    assert twice.status_code == 422
    assert twice.json()["errors"] == [{"name": "rg", "reason": "given more than once"}]


def test_job_description_and_catalogue(serve):
    """GET /<job> and GET /_jobs describe jobs with JSON Schema parameters."""
    srv = serve()
    with srv.client() as c:
        one = c.get("/py/echo").json()
        secret = c.get("/py/secret").json()
        all_jobs = c.get("/_jobs").json()["jobs"]
    assert one["description"].startswith("Print each parameter")
    props = one["parameters"]["properties"]
    assert props["rg"]["pattern"] == "^[a-z][a-z0-9-]{0,20}$"
    assert props["size"]["enum"] == ["small", "large"]
    assert props["count"]["maximum"] == 10
    assert one["parameters"]["required"] == ["rg"]
    assert secret["parameters"]["properties"]["pw"]["x-secret"] is True
    assert {"/py/echo", "/sh/echo", "/sh/tree"} <= {j["path"] for j in all_jobs}

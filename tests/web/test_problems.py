"""Refusals answered as problem+json: each kind of refusal, its status, title and words."""

from __future__ import annotations

import pytest

NOT_FOUND = {"type": "about:blank", "title": "Not found", "status": 404}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "expected"),
    [
        ("POST", "/nope", {}, None, 404,
         NOT_FOUND | {"detail": "no job at /nope; GET /_jobs lists them"}),
        ("POST", "/py/echo%2F", {}, None, 404, NOT_FOUND | {"detail": "no such job"}),
        ("GET", "/_runs/01NOPE", {}, None, 404, NOT_FOUND | {"detail": "no run 01NOPE"}),
        ("POST", "/py/echo?rg=a", {"content-type": "text/xml"}, b"<x/>", 415,
         {"type": "about:blank", "title": "Unsupported media type", "status": 415,
          "detail": "a Python job takes a JSON object or a form body, not text/xml"}),
        ("POST", "/py/echo?rg=a", {"content-type": "application/json"}, b"x" * 2_000_000, 413,
         {"type": "about:blank", "title": "Payload too large", "status": 413,
          "detail": "the body is 2000000 bytes; the limit is 1048576"}),
        ("GET", "/_runs?state=bogus&limit=abc", {}, None, 422,
         {"type": "about:blank", "title": "Invalid parameters", "status": 422,
          "detail": "2 parameter problem(s) in the query of /_runs",
          "errors": [{"name": "state", "reason": "unknown state(s) bogus"},
                     {"name": "limit", "reason": "must be a whole number from 1 to 500"}]}),
        ("DELETE", "/py/echo", {}, None, 405,
         {"type": "about:blank", "title": "Method not allowed", "status": 405,
          "detail": "DELETE is not allowed here"}),
    ],
)  # fmt: skip
def test_each_refusal_is_a_problem_with_its_status_title_and_detail(
    serve, method, path, headers, body, status, expected
):
    """The HTTP edge's one table: a domain refusal becomes this exact problem document."""
    srv = serve()
    with srv.client() as c:
        r = c.request(method, path, headers=headers, content=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == expected


def test_a_full_queue_is_429_with_retry_after(serve):
    """Busy carries a retry time, sent as Retry-After."""
    srv = serve(max_running=1, max_queued=0)
    with srv.client() as c:
        c.post("/py/sleep?seconds=5", headers={"Prefer": "respond-async"})
        busy = c.post("/py/sleep?seconds=5", headers={"Prefer": "respond-async"})
    assert busy.status_code == 429
    assert busy.json()["title"] == "Too many runs"
    assert int(busy.headers["retry-after"]) >= 1


def test_cancelling_an_ended_run_is_a_conflict(serve):
    """409 names the run and the state it ended in."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a", headers={"Prefer": "wait"}).headers["x-run-id"]
        r = c.post(f"/_runs/{run_id}/cancel")
    assert r.status_code == 409
    assert r.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": f"run {run_id} already ended: succeeded",
    }

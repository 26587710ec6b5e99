"""Secret parameters are never stored, logged, streamed or shown."""

from __future__ import annotations

import logging

from tests.conftest import files_containing

SECRET = "Hunter2-Very-Secret-Value"


def test_a_secret_appears_nowhere(serve, caplog):
    """After runs with a secret, no stream, record, API answer, log line or file holds it."""
    caplog.set_level(logging.DEBUG)
    srv = serve()
    with srv.client() as c:
        text = c.post("/py/secret", params={"user": "ann", "pw": SECRET})
        sse = c.post(
            "/py/secret",
            data={"user": "bob", "pw": SECRET},
            headers={"Accept": "text/event-stream"},
        )
        script = c.post("/sh/echo", params={"token": SECRET, "name": "x"})
        bad = c.post("/py/secret", params={"user": "a\x00", "pw": SECRET})
        answers = [text, sse, script, bad]
        for r in (text, sse, script):
            run_id = r.headers["x-run-id"]
            answers += [
                c.get(f"/_runs/{run_id}"),
                c.get(f"/_runs/{run_id}/log"),
                c.get(f"/_runs/{run_id}/events"),
            ]
        answers.append(c.get("/_runs"))
        answers.append(c.get("/_jobs"))
    # The job really got the value: it printed its length.
    assert f"len={len(SECRET)}" in text.text
    assert "pw=***" in text.text and "also on stderr: ***" in text.text
    assert "token=***" in script.text
    for r in answers:
        assert SECRET not in r.text, r.url
        assert all(SECRET not in v for v in r.headers.values())
    record = answers[4].json()
    assert record["params"] == {"user": "ann", "pw": "***"}
    srv.stop()
    assert files_containing(srv.state_dir, SECRET.encode()) == []
    # The test's own HTTP client logs its URLs; the server side must not.
    server_side = [r for r in caplog.records if r.name.startswith(("runner", "uvicorn"))]
    assert server_side
    assert not [r for r in server_side if SECRET in r.getMessage() or SECRET in str(r.__dict__)]


def test_secret_is_masked_even_when_a_job_fails_with_it(serve):
    """A traceback or error message echoing the secret is masked too."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/secret", params={"user": "x", "pw": SECRET, "extra": "1"})
    assert r.status_code == 422
    assert SECRET not in r.text

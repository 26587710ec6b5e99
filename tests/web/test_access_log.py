"""The access log of a real `runner serve` process: one line per request, readable, and
never a secret — not at debug level, not in a query, a body, a misspelt name or a login."""

from __future__ import annotations

import json
import time

from tests.conftest import wait_final

SECRET = "Sup3r-Secret-Value-4711"
TYPO = "Typo-Secret-Value-0815"
PASSWORD = "wrong-Passw0rd-9"
TOKEN = "rnr_not-a-real-token-value-123"


def test_every_request_gets_one_line_and_no_secret_reaches_any_log_line(serve_process, tmp_path):
    """Secrets sent every way a caller can send them, at log_level debug: the access lines
    name method, path, status, bytes, duration, principal and run id; no line holds one."""
    srv = serve_process(None, env={"RUNNER_LOG_LEVEL": "debug", "RUNNER_LOG_FORMAT": "json"})
    with srv.client() as c:
        by_query = c.post(f"/py/secret?user=ann&pw={SECRET}", headers={"Prefer": "wait"})
        by_json = c.post("/py/secret", json={"user": "bob", "pw": SECRET},
                         headers={"Prefer": "wait"})  # fmt: skip
        by_form = c.post("/py/secret", data={"user": "cy", "pw": SECRET},
                         headers={"Prefer": "wait"})  # fmt: skip
        misspelt = c.post(f"/py/secret?user=dee&pw={SECRET}&pwd={TYPO}")
        script = c.post(f"/sh/echo?name=x&token={SECRET}", headers={"Prefer": "wait"})
        c.get("/_runs", params={"job": "py/secret", "state": "succeeded"})
        c.get("/_health", auth=("mallory", PASSWORD))
        c.get("/_ready", headers={"Authorization": f"Bearer {TOKEN}"})
        for r in (by_query, by_json, by_form, script):
            assert r.status_code == 200, r.text
            wait_final(c, r.headers["x-run-id"])
        assert misspelt.status_code == 422
    srv.stop()
    assert srv.proc is not None and srv.proc.stderr is not None
    text = srv.proc.stderr.read()
    for needle in (SECRET, TYPO, PASSWORD, TOKEN):
        assert needle not in text, f"{needle} was logged"
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "runner.access"]
    posts = [a for a in access if a["method"] == "POST"]
    assert len(posts) == 5
    first = posts[0]
    assert first["path"] == "/py/secret?user=ann&pw=***"
    assert first["status"] == 200 and first["bytes"] > 0 and first["duration"] > 0
    assert first["principal"] == "anonymous" and first["run_id"] == by_query.headers["x-run-id"]
    assert first["ts"].endswith("Z") and "T" in first["ts"]  # ISO 8601, not epoch floats
    assert posts[3]["path"] == "/py/secret?user=dee&pw=***&pwd=***"
    assert posts[3]["status"] == 422
    # A script takes any name: only the names it declares (and not as secret) are shown.
    assert posts[4]["path"] == "/sh/echo?name=***&token=***"
    listing = next(a for a in access if a["path"].startswith("/_runs?"))
    assert listing["path"] == "/_runs?job=py/secret&state=succeeded"
    # Readable by people too: the message says it all on one line.
    assert first["msg"].startswith('127.0.0.1 anonymous "POST /py/secret?user=ann&pw=***" 200 ')
    # No Azure SDK HTTP header dumps, even at debug (none ran), and one line per request.
    assert len([a for a in access if a["path"] == "/_health"]) == 1


def test_failed_logins_are_logged_with_the_address(serve, make_htpasswd, caplog):
    """A wrong password and an unknown token: a warning each, naming the address (and the
    user name for Basic), never the password or the token."""
    srv = serve(htpasswd=make_htpasswd(alice="alice-pw-123"))
    with caplog.at_level("INFO"), srv.client() as c:
        assert c.get("/_jobs", auth=("alice", PASSWORD)).status_code == 401
        assert c.get("/_jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        assert c.get("/_jobs", auth=("alice", "alice-pw-123")).status_code == 200
        # The access line is written once the answer is sent: the client may read it
        # first (and the level must still be INFO when it comes).
        deadline = time.monotonic() + 5
        while len(access := [r for r in caplog.records if r.name == "runner.access"]) < 3:
            assert time.monotonic() < deadline, access
            time.sleep(0.02)
    failed = [r.getMessage() for r in caplog.records if r.name == "runner.security"]
    assert failed == [
        "failed login (basic user 'alice') from 127.0.0.1",
        "failed login (bearer token) from 127.0.0.1",
    ]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logged and TOKEN not in logged
    assert [getattr(r, "principal", None) for r in access] == ["-", "-", "user:alice"]

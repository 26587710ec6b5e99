"""The web page's guards over HTTP: its POSTs need its CSRF token, another site's POSTs
are refused everywhere, the page has a strict CSP, and frictions of issue 11."""

from __future__ import annotations

import re

from runner.policy import JobPolicy


def _token(c) -> str:
    page = c.get("/")
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found, page.text
    return found[1]


def test_the_pages_posts_need_its_token_issued_to_the_same_caller(serve, make_htpasswd):
    """No token, another caller's token, a forged one: 403 and no run; the right one: 202."""
    srv = serve(htpasswd=make_htpasswd(alice="alice-pw-123", bob="bob-pw-1234"))
    with (
        srv.client(auth=("alice", "alice-pw-123")) as alice,
        srv.client(auth=("bob", "bob-pw-1234")) as bob,
    ):
        mine, theirs = _token(alice), _token(bob)
        body = {"params": {"n": 1}}
        assert alice.post("/_ui/start/py/lines", json=body).status_code == 403
        for bad in (theirs, mine[:-2] + "xx", "1.abc"):
            r = alice.post("/_ui/start/py/lines", json=body, headers={"X-CSRF-Token": bad})
            assert r.status_code == 403, bad
        ok = alice.post("/_ui/start/py/lines", json=body, headers={"X-CSRF-Token": mine})
        assert ok.status_code == 202
        run = alice.get(f"/_runs/{ok.json()['id']}").json()
        assert run["caller"] == "user:alice" and run["trigger"]["scheme"] == "web"
        assert len(alice.get("/_runs").json()["runs"]) == 1
        bad = alice.post("/_ui/start/py/lines", json={"params": {"n": "many"}},
                         headers={"X-CSRF-Token": mine})  # fmt: skip
        assert bad.status_code == 422 and bad.json()["errors"][0]["name"] == "n"


def test_another_sites_form_post_is_refused_even_with_the_browsers_credentials(serve):
    """A cross-site form POST (a browser holding Basic credentials would send them) runs
    nothing; the same request from a non-browser client, or same-origin, still works."""
    srv = serve(cors_origins=("https://ci.example",))
    with srv.client() as c:
        cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
        evil = c.post("/py/lines", data={"n": "1"}, headers=cross)
        assert evil.status_code == 403
        assert "another site" in evil.json()["detail"]
        assert c.get("/_runs").json()["runs"] == []
        allowed = c.post("/py/lines?n=1", headers={"Sec-Fetch-Site": "cross-site",
                         "Origin": "https://ci.example", "Prefer": "wait"})  # fmt: skip
        assert allowed.status_code == 200
        assert c.post("/py/lines?n=1", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
        assert c.post("/py/lines?n=1").status_code == 200


def test_the_page_and_its_files_are_served_with_a_strict_csp_behind_auth(serve, make_htpasswd):
    """/ needs the API's credentials; the page holds no inline script; every answer has a
    CSP that allows only the runner's own script files."""
    srv = serve(htpasswd=make_htpasswd(alice="alice-pw-123"))
    with srv.client() as anon, srv.client(auth=("alice", "alice-pw-123")) as c:
        assert anon.get("/").status_code == 401
        page = c.get("/")
        script = c.get("/_ui/static/app.js")
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script type="module" src="_ui/static/app.js">'
    ]
    assert 'href="/' not in page.text and 'src="/' not in page.text, "relative URLs only"
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_ready_is_open_for_probes_while_the_rest_needs_credentials(serve, make_htpasswd):
    """Load balancer and kubelet probes carry no credentials: /_ready answers them."""
    srv = serve(htpasswd=make_htpasswd(alice="alice-pw-123"))
    with srv.client() as anon:
        assert anon.get("/_ready").json()["ready"] is True
        assert anon.get("/_health").status_code == 200
        assert anon.get("/_runs").status_code == 401


def test_a_bad_state_filter_is_called_a_bad_query_not_a_job_that_did_not_run(serve):
    """/_runs?state=bogus: 422 naming the state, without "nothing was run"."""
    srv = serve()
    with srv.client() as c:
        r = c.get("/_runs?state=bogus")
    assert r.status_code == 422
    assert "nothing was run" not in r.json()["detail"]
    assert r.json()["errors"] == [{"name": "state", "reason": "unknown state(s) bogus"}]


def test_a_bad_signature_does_not_tell_the_sender_where_the_secret_lives(serve, monkeypatch):
    """The 403 for a forged GitHub delivery names no env: or file: source."""
    monkeypatch.setenv("SLACK_SECRET", "the-real-secret")
    srv = serve(policies=(JobPolicy("py/echo", verify="github", secrets=("env:SLACK_SECRET",)),))
    with srv.client() as c:
        r = c.post("/py/echo", content=b"{}", headers={"X-Hub-Signature-256": "sha256=" + "0" * 64,
                   "X-GitHub-Delivery": "d", "X-GitHub-Event": "push"})  # fmt: skip
    assert r.status_code == 403
    assert "SLACK_SECRET" not in r.text and "env:" not in r.text
    assert "matches none of this job's secrets" in r.json()["detail"]


def test_run_records_carry_iso_times_beside_the_epoch_ones(serve):
    """created_at/started_at/finished_at: ISO 8601 in UTC."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post("/py/lines?n=1", headers={"Prefer": "wait"}).headers["x-run-id"]
        run = c.get(f"/_runs/{run_id}").json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", run["finished_at"])

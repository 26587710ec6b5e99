"""Security end to end through the real server: who may run what, webhooks, hostile input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time

import httpx
import pytest

from runner.auth.htpasswd import set_password
from runner.auth.tokens import TokenStore
from runner.policy import JobPolicy
from tests.conftest import ROOT, TEST_JOBS, raw_tls

GITHUB_SECRET = "gh-hook-secret-for-tests"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()


def _runs(srv, auth=None) -> list[dict]:
    with srv.client(auth=auth) as c:
        return c.get("/_runs").json()["runs"]


@pytest.fixture
def secured(serve, tmp_path):
    """A server with one user (alice), one token limited to py/echo, and no anonymous."""
    htpasswd = tmp_path / "htpasswd"
    set_password(htpasswd, "alice", "wonder-land-pw", cost=4)
    store = tmp_path / "tokens.json"
    token = TokenStore(store).create("ci", ["py/echo"])
    srv = serve(htpasswd=htpasswd, token_store=store)
    return srv, token


def test_without_credentials_only_health_answers(secured):
    """No credentials: 401 with a Basic and a Bearer challenge; /_health stays open."""
    srv, _ = secured
    with srv.client() as c:
        health = c.get("/_health")
        denied = c.post("/py/echo?rg=a")
        history = c.get("/_runs")
    assert health.status_code == 200
    assert denied.status_code == 401 and history.status_code == 401
    challenges = denied.headers.get_list("www-authenticate")
    assert any(h.startswith("Basic") for h in challenges)
    assert any(h.startswith("Bearer") for h in challenges)
    assert denied.headers["content-type"] == "application/problem+json"


def test_users_and_tokens_run_and_each_run_records_who(secured):
    """Basic and Bearer both work; the run records user:alice or token:ci."""
    srv, token = secured
    with srv.client(auth=("alice", "wonder-land-pw")) as c:
        by_alice = c.post("/py/echo?rg=a", headers={"Prefer": "wait"})
        wrong = c.post("/py/echo?rg=a", auth=("alice", "nope"))
    bearer = {"Authorization": f"Bearer {token}"}
    with srv.client(headers=bearer) as c:
        by_token = c.post("/py/echo?rg=b", headers={"Prefer": "wait"})
        outside = c.post("/py/lines?n=1")
    assert by_alice.status_code == 200 and by_token.status_code == 200
    assert wrong.status_code == 401
    assert outside.status_code == 403 and "token:ci" in outside.json()["detail"]
    callers = {r["caller"] for r in _runs(srv, auth=("alice", "wonder-land-pw"))}
    assert callers == {"user:alice", "token:ci"}


def test_a_token_sees_only_the_runs_of_its_jobs(secured):
    """A token limited to py/echo cannot list, read or cancel a run of another job."""
    srv, token = secured
    with srv.client(auth=("alice", "wonder-land-pw")) as c:
        other = c.post("/py/lines?n=1", headers={"Prefer": "wait"}).headers["x-run-id"]
        mine = c.post("/py/echo?rg=a", headers={"Prefer": "wait"}).headers["x-run-id"]
    with srv.client(headers={"Authorization": f"Bearer {token}"}) as c:
        listed = [r["id"] for r in c.get("/_runs").json()["runs"]]
        hidden = c.get(f"/_runs/{other}")
        cancel = c.post(f"/_runs/{other}/cancel")
        visible = c.get(f"/_runs/{mine}")
    assert listed == [mine]
    assert hidden.status_code == 404 and cancel.status_code == 404
    assert visible.status_code == 200


def test_job_allow_lists_refuse_other_principals(serve, tmp_path):
    """[jobs."py/echo"] allow = ["user:bob"]: alice gets 403 and nothing runs."""
    htpasswd = tmp_path / "htpasswd"
    set_password(htpasswd, "alice", "alice-pw-123", cost=4)
    set_password(htpasswd, "bob", "bob-pw-12345", cost=4)
    srv = serve(htpasswd=htpasswd, policies=(JobPolicy("py/echo", allow=("user:bob",)),))
    with srv.client(auth=("alice", "alice-pw-123")) as c:
        refused = c.post("/py/echo?rg=a")
    with srv.client(auth=("bob", "bob-pw-12345")) as c:
        allowed = c.post("/py/echo?rg=a", headers={"Prefer": "wait"})
    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert [r["caller"] for r in _runs(srv, auth=("bob", "bob-pw-12345"))] == ["user:bob"]


@pytest.fixture
def hooks(serve, monkeypatch):
    """A server whose py/echo takes GitHub deliveries and py/lines Slack and Standard ones."""
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("SLACK_SECRET", SLACK_SECRET)
    monkeypatch.setenv("STD_SECRET", STANDARD_SECRET)
    return serve(
        policies=(
            JobPolicy("py/echo", verify="github", secrets=("env:GH_SECRET",)),
            JobPolicy("py/lines", verify="slack", secrets=("env:SLACK_SECRET",)),
            JobPolicy("sh/echo", verify="standard", secrets=("env:STD_SECRET",)),
        )
    )


def _github(body: bytes, delivery: str, secret: str = GITHUB_SECRET, event: str = "push"):
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={sig}",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


def test_github_delivery_runs_once_and_a_replay_returns_the_original(hooks):
    """A signed delivery runs; the same delivery id again answers with that run, runs nothing."""
    body = json.dumps({"rg": "gh"}).encode()
    with hooks.client() as c:
        first = c.post("/py/echo", content=body, headers=_github(body, "d-1") | {"Prefer": "wait"})
        again = c.post("/py/echo", content=body, headers=_github(body, "d-1"))
    assert first.status_code == 200, first.text
    assert "rg=gh" in first.text
    assert again.headers["x-run-id"] == first.headers["x-run-id"]
    assert again.headers["x-replayed"] == "true"
    runs = _runs(hooks)
    assert len(runs) == 1
    assert runs[0]["caller"] == "webhook:github/d-1"


def test_a_replay_after_a_restart_still_runs_nothing(serve, monkeypatch, tmp_path):
    """The store remembers deliveries: after a restart, a redelivery answers with its run."""
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    policies = (JobPolicy("py/echo", verify="github", secrets=("env:GH_SECRET",)),)
    state = tmp_path / "kept"
    body = json.dumps({"rg": "gh"}).encode()
    first = serve(state_dir=state, policies=policies)
    with first.client() as c:
        run_id = c.post("/py/echo", content=body, headers=_github(body, "d-9")).headers["x-run-id"]
    first.stop()
    again = serve(state_dir=state, policies=policies)
    with again.client() as c:
        replay = c.post("/py/echo", content=body, headers=_github(body, "d-9"))
    assert replay.headers["x-run-id"] == run_id
    assert replay.headers["x-replayed"] == "true"
    assert len(_runs(again)) == 1


@pytest.mark.parametrize("how", ["tampered", "wrong secret", "unsigned"])
def test_bad_github_signatures_are_refused_and_run_nothing(hooks, how):
    """A tampered body, a wrong secret or no signature: 403 problem, no run."""
    body = json.dumps({"rg": "gh"}).encode()
    headers = _github(body, f"d-{how}", secret="wrong" if how == "wrong secret" else GITHUB_SECRET)
    if how == "tampered":
        body = json.dumps({"rg": "evil"}).encode()
    if how == "unsigned":
        del headers["X-Hub-Signature-256"]
    with hooks.client() as c:
        r = c.post("/py/echo", content=body, headers=headers)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert GITHUB_SECRET not in r.text
    assert _runs(hooks) == []


def test_github_ping_is_answered_not_run(hooks):
    """GitHub's ping event gets 200 and starts nothing."""
    body = b'{"zen": "Keep it logically awesome."}'
    with hooks.client() as c:
        r = c.post("/py/echo", content=body, headers=_github(body, "p-1", event="ping"))
    assert r.status_code == 200
    assert r.json()["kind"] == "ping"
    assert _runs(hooks) == []


def _slack(body: bytes, ts: int, secret: str = SLACK_SECRET) -> dict[str, str]:
    base = f"v0:{ts}:".encode() + body
    sig = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={sig}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_slack_signatures_and_their_time_window(hooks):
    """A fresh signed Slack request runs; a stale one is refused; ssl_check is answered."""
    body = b"n=2"
    now = int(time.time())
    with hooks.client() as c:
        ok = c.post("/py/lines", content=body, headers=_slack(body, now) | {"Prefer": "wait"})
        stale = c.post("/py/lines", content=body, headers=_slack(body, now - 600))
        # Slack's certificate check comes unsigned: answered, never run.
        check = c.post(
            "/py/lines",
            content=b"ssl_check=1&token=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert ok.status_code == 200 and "line 2" in ok.text
    assert stale.status_code == 403
    assert check.status_code == 200
    assert len(_runs(hooks)) == 1


def _standard(body: bytes, msg_id: str, ts: int) -> dict[str, str]:
    key = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{ts}.".encode() + body
    sig = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": f"v1,{sig}"}


def test_standard_webhooks_run_once_and_refuse_stale_or_tampered(hooks):
    """Standard Webhooks: signed runs (body as $1), a replay runs nothing, bad ones get 403."""
    body = b'{"event": "deploy"}'
    now = int(time.time())
    with hooks.client() as c:
        ok = c.post(
            "/sh/echo", content=body, headers=_standard(body, "msg_1", now) | {"Prefer": "wait"}
        )
        replay = c.post("/sh/echo", content=body, headers=_standard(body, "msg_1", now))
        stale = c.post("/sh/echo", content=body, headers=_standard(body, "msg_2", now - 3600))
        tampered = c.post("/sh/echo", content=b"{}", headers=_standard(body, "msg_3", now))
    assert ok.status_code == 200 and 'body={"event": "deploy"}' in ok.text
    assert replay.headers["x-run-id"] == ok.headers["x-run-id"]
    assert stale.status_code == 403 and tampered.status_code == 403
    assert len(_runs(hooks)) == 1


def test_starting_runs_is_rate_limited_per_principal(serve):
    """Past its burst, a caller starting runs gets 429 with Retry-After; reading is not limited."""
    srv = serve(rate_limit=0.5, rate_burst=2)
    with srv.client() as c:
        codes = [c.post("/py/echo?rg=a", headers={"Prefer": "respond-async"}).status_code
                 for _ in range(3)]  # fmt: skip
        limited = c.post("/py/echo?rg=a")
        reads = [c.get("/_runs").status_code for _ in range(5)]
    assert codes[:2] == [202, 202] and codes[2] == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert reads == [200] * 5


def test_open_server_beyond_loopback_is_refused(tmp_path):
    """`runner serve --host 0.0.0.0` with no authentication refuses to start, and says why."""
    cmd = [sys.executable, "-m", "runner", "serve", "--host", "0.0.0.0", "--port", "0"]
    cmd += ["--state-dir", str(tmp_path), "--jobs", str(TEST_JOBS)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert done.returncode == 2
    assert "authentication" in done.stderr and "--insecure-no-auth" in done.stderr


def test_response_headers_protect_browsers(serve):
    """Run data is never HTML: nosniff, no-store, HSTS under TLS; CORS only when configured."""
    srv = serve()
    cors = serve(cors_origins=("https://ops.example",))
    with srv.client() as c:
        text = c.post("/py/echo?rg=a", headers={"Accept": "text/html"})
        preflight = c.options(
            "/py/echo",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    with cors.client() as c:
        allowed = c.options(
            "/py/echo",
            headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "POST"},
        )
    assert text.headers["content-type"].startswith("text/plain")
    assert text.headers["x-content-type-options"] == "nosniff"
    assert text.headers["cache-control"] == "no-store"
    assert text.headers["strict-transport-security"].startswith("max-age=")
    assert "access-control-allow-origin" not in preflight.headers
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"


def test_a_slow_body_is_cut_off(serve):
    """A client that trickles its body past body_timeout gets 408, and no run exists."""
    srv = serve(body_timeout=0.5)
    with raw_tls(srv) as s:
        s.sendall(
            b"POST /py/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 408")
    assert _runs(srv) == []


def test_deeply_nested_json_is_refused(serve):
    """A JSON body nested past the depth limit is a 422, not a crash."""
    srv = serve()
    body = "[" * 5000 + "]" * 5000
    with srv.client() as c:
        r = c.post("/py/echo", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_huge_headers_are_refused(serve):
    """A request with 100 KB of headers is refused before any job code runs."""
    srv = serve()
    with srv.client() as c:
        try:
            r = c.post("/py/echo?rg=a", headers={"X-Junk": "x" * 100_000})
        except httpx.RemoteProtocolError:
            return  # the server closed the connection: refused
    assert r.status_code in (400, 413, 431)
    assert _runs(srv) == []


def test_request_headers_never_reach_a_scripts_environment(serve):
    """Authorization and Cookie values (and other headers) are not in a script's env."""
    srv = serve()
    with srv.client() as c:
        r = c.post(
            "/sh/env?who=ann",
            headers={"Authorization": "Bearer tok-SECRET-123", "Cookie": "session=COOKIE-456"},
        )
    env = dict(line.split("=", 1) for line in r.text.splitlines() if "=" in line)
    assert env["who"] == "ann" and env["RUNNER_JOB"] == "sh/env"
    assert "tok-SECRET-123" not in r.text and "COOKIE-456" not in r.text
    assert not [k for k in env if k.upper().startswith(("HTTP_", "AUTHORIZATION", "COOKIE"))]


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_for_is_believed_only_from_trusted_proxies(serve, trusted):
    """Per-address rate limits see X-Forwarded-For only when the proxy is trusted."""
    srv = serve(rate_limit=0.01, rate_burst=1, trusted_proxies=("127.0.0.1",) if trusted else ())
    with srv.client() as c:
        codes = [
            c.post(
                "/py/echo?rg=a",
                headers={"X-Forwarded-For": addr, "Prefer": "respond-async"},
            ).status_code
            for addr in ("203.0.113.7", "198.51.100.9")
        ]
    # Trusted: two clients, two buckets. Untrusted: both are 127.0.0.1, one bucket.
    assert codes == ([202, 202] if trusted else [202, 429])


def test_gitlab_token_and_teams_hmac_deliveries(serve, monkeypatch):
    """GitLab's X-Gitlab-Token and Teams' HMAC authorization run; wrong ones get 403."""
    teams_key = base64.b64encode(b"teams-outgoing-webhook-key-32byt").decode()
    monkeypatch.setenv("GL_TOKEN", "gitlab-token-for-tests")
    monkeypatch.setenv("TEAMS_KEY", teams_key)
    srv = serve(
        policies=(
            JobPolicy("py/echo", verify="gitlab", secrets=("env:GL_TOKEN",)),
            JobPolicy("sh/echo", verify="teams", secrets=("env:TEAMS_KEY",)),
        )
    )
    gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "gl-1",
              "Content-Type": "application/json"}  # fmt: skip
    body = json.dumps({"rg": "gl"}).encode()
    activity = json.dumps(
        {"type": "message", "id": "teams-1", "text": "deploy",
         "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
    ).encode()  # fmt: skip
    mac = hmac.new(base64.b64decode(teams_key), activity, hashlib.sha256).digest()
    with srv.client() as c:
        ok = c.post("/py/echo", content=body,
                    headers=gitlab | {"X-Gitlab-Token": "gitlab-token-for-tests"})  # fmt: skip
        bad = c.post("/py/echo", content=body, headers=gitlab | {"X-Gitlab-Token": "nope"})
        teams = c.post(
            "/sh/echo",
            content=activity,
            headers={"Authorization": "HMAC " + base64.b64encode(mac).decode()},
        )
        teams_bad = c.post("/sh/echo", content=activity, headers={"Authorization": "HMAC AAAA"})
    assert ok.status_code == 200 and "rg=gl" in ok.text
    assert teams.status_code == 200, teams.text
    assert bad.status_code == 403 and teams_bad.status_code == 403
    assert {r["caller"] for r in _runs(srv)} == {"webhook:gitlab/gl-1", "webhook:teams/teams-1"}


TEAMS_KEY = base64.b64encode(b"teams-outgoing-webhook-key-32byt").decode()


def _signed(scheme: str, body: bytes, *, delivery: str, ts: float, secret: str | None = None):
    """Headers a sender of ``scheme`` would send (body-derived for Teams: see _teams_body)."""
    if scheme == "github":
        return _github(body, delivery, secret=secret or GITHUB_SECRET)
    if scheme == "gitlab":
        return {"X-Gitlab-Token": secret or "gitlab-token-for-tests",
                "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Event": "Push Hook"}  # fmt: skip
    if scheme == "slack":
        return _slack(body, int(ts), secret=secret or SLACK_SECRET)
    if scheme == "teams":
        key = base64.b64decode(secret or TEAMS_KEY)
        mac = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        return {"Authorization": f"HMAC {mac}"}
    headers = _standard(body, delivery, int(ts))
    if secret:
        headers["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
    return headers


def _body(scheme: str, delivery: str, ts: float) -> bytes:
    if scheme == "teams":  # Teams signs no header: its activity carries id and time
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))
        return json.dumps({"type": "message", "id": delivery, "timestamp": stamp}).encode()
    if scheme == "slack":
        return f"text={delivery}".encode()
    return json.dumps({"delivery": delivery}).encode()


@pytest.mark.parametrize("scheme", ["github", "gitlab", "slack", "teams", "standard"])
def test_each_scheme_refuses_forgeries_and_runs_a_delivery_once(serve, monkeypatch, scheme):
    """Per scheme: tampered, wrong-secret and stale deliveries get 403; a replay runs nothing."""
    secret = {"github": GITHUB_SECRET, "gitlab": "gitlab-token-for-tests", "slack": SLACK_SECRET,
              "teams": TEAMS_KEY, "standard": STANDARD_SECRET}[scheme]  # fmt: skip
    monkeypatch.setenv("HOOK_SECRET", secret)
    srv = serve(policies=(JobPolicy("sh/echo", verify=scheme, secrets=("env:HOOK_SECRET",)),))
    now = time.time()
    body = _body(scheme, "d-1", now)
    with srv.client() as c:
        first = c.post(
            "/sh/echo", content=body, headers=_signed(scheme, body, delivery="d-1", ts=now)
        )
        again = c.post(
            "/sh/echo", content=body, headers=_signed(scheme, body, delivery="d-1", ts=now)
        )
        refused = {}
        if scheme != "gitlab":  # a shared token signs no body: tampering is moot there
            tampered = body.replace(b"d-1", b"d-X")
            refused["tampered"] = c.post(
                "/sh/echo", content=tampered, headers=_signed(scheme, body, delivery="d-2", ts=now)
            )
        wrong_teams = base64.b64encode(b"n" * 32).decode()
        wrong = {"teams": wrong_teams, "standard": "bad"}.get(scheme, "nope")
        b3 = _body(scheme, "d-3", now)
        refused["wrong secret"] = c.post(
            "/sh/echo",
            content=b3,
            headers=_signed(scheme, b3, delivery="d-3", ts=now, secret=wrong),
        )
        if scheme in ("slack", "teams", "standard"):
            old = now - 3600
            b4 = _body(scheme, "d-4", old)
            refused["stale"] = c.post(
                "/sh/echo", content=b4, headers=_signed(scheme, b4, delivery="d-4", ts=old)
            )
    assert first.status_code == 200, first.text
    assert again.headers["x-run-id"] == first.headers["x-run-id"]
    assert again.headers["x-replayed"] == "true"
    for how, r in refused.items():
        assert r.status_code == 403, (how, r.text)
        assert secret not in r.text
    assert len(_runs(srv)) == 1


def test_a_captured_github_delivery_replayed_under_another_id_runs_nothing(hooks):
    """X-GitHub-Delivery is not signed: the same signed body under a changed, missing or
    upper-cased id is still the same delivery and answers with the original run."""
    body = json.dumps({"rg": "gh"}).encode()
    with hooks.client() as c:
        first = c.post(
            "/py/echo", content=body, headers=_github(body, "d-abc") | {"Prefer": "wait"}
        )
        replays = []
        for other in ("d-xyz", "D-ABC"):
            replays.append(c.post("/py/echo", content=body, headers=_github(body, other)))
        bare = _github(body, "x")
        del bare["X-GitHub-Delivery"]
        replays.append(c.post("/py/echo", content=body, headers=bare))
    assert all(r.headers["x-run-id"] == first.headers["x-run-id"] for r in replays)
    assert all(r.headers["x-replayed"] == "true" for r in replays)
    assert len(_runs(hooks)) == 1


def test_replays_to_one_job_do_not_starve_a_delivery_to_another(serve, monkeypatch):
    """The webhook rate limit is per sender and job: 45 replays to py/echo leave the
    bucket of py/lines untouched."""
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    policies = (
        JobPolicy("py/echo", verify="github", secrets=("env:GH_SECRET",)),
        JobPolicy("py/lines", verify="github", secrets=("env:GH_SECRET",)),
    )
    srv = serve(policies=policies, rate_limit=1.0, rate_burst=40)
    body = json.dumps({"rg": "gh"}).encode()
    with srv.client() as c:
        answers = [c.post("/py/echo", content=body, headers=_github(body, "d-1")).status_code
                   for _ in range(45)]  # fmt: skip
        other = json.dumps({"n": 1}).encode()
        legit = c.post("/py/lines", content=other, headers=_github(other, "d-2"))
    assert 429 in answers
    assert legit.status_code == 200

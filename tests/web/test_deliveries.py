"""Webhook deliveries mapped to parameters and filtered (runner.toml ``params``, ``events``,
``when``), end to end through a real server: what the job printed, what the sender heard."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import tomllib
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from runner.policy import policies_from_toml

SECRET = "gh-push-hook-secret"
GL_TOKEN = "gitlab-push-token"
SHA = "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"

DEPLOY = '''\
"""Deploy a branch of a repository (the delivery tests' job)."""

import json
from typing import Annotated

from runner import Context, Param


async def run(
    ctx: Context,
    ref: Annotated[str, Param(pattern=r"^refs/heads/[a-z0-9-]+$")],
    repo: str,
    sha: Annotated[str, Param(pattern=r"^[0-9a-f]{40}$")],
    env: str = "staging",
) -> None:
    ctx.print(f"deploying {repo}@{sha} from {ref} to {env}")
    t = ctx.trigger
    ctx.print(f"trigger {t.scheme} {t.event} {t.delivery_id} {json.dumps(dict(t.fields))}")
'''

SCRIPT = """\
#!/bin/sh
# Deploy from a GitLab push (the delivery tests' script).
echo "project=$project ref=$ref"
echo "body-kind=$(printf '%s' "$1" | head -c 22)"
"""


def _user(login: str, ident: int) -> dict[str, Any]:
    return {"login": login, "id": ident, "node_id": "MDQ6VXNlcjE=", "type": "User",
            "site_admin": False, "html_url": f"https://github.com/{login}"}  # fmt: skip


def _repository() -> dict[str, Any]:
    return {
        "id": 186853002, "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=", "name": "hello",
        "full_name": "octo-org/hello", "private": False, "owner": _user("octo-org", 7),
        "html_url": "https://github.com/octo-org/hello", "default_branch": "main",
        "fork": False, "visibility": "public", "topics": [], "pushed_at": 1557933657,
    }  # fmt: skip


def github_push(ref: str = "refs/heads/main", after: str = SHA) -> dict[str, Any]:
    """A push event as GitHub documents it (fields trimmed, shape kept)."""
    commit = {
        "id": after, "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433", "distinct": True,
        "message": "Update README.md", "timestamp": "2026-05-15T15:20:41Z",
        "url": f"https://github.com/octo-org/hello/commit/{after}",
        "author": {"name": "Mona", "email": "mona@example.com", "username": "mona"},
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": [], "removed": [], "modified": ["README.md"],
    }  # fmt: skip
    deleted = after == "0" * 40
    return {
        "ref": ref, "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "after": after,
        "created": False, "deleted": deleted, "forced": False, "base_ref": None,
        "compare": "https://github.com/octo-org/hello/compare/6113728f27ae...59b20b8d5c6f",
        "commits": [] if deleted else [commit], "head_commit": None if deleted else commit,
        "repository": _repository(),
        "pusher": {"name": "mona", "email": "mona@example.com"},
        "sender": _user("mona", 21031067),
    }  # fmt: skip


def github_issue() -> dict[str, Any]:
    """An ``issues`` event (opened), as GitHub documents it (trimmed)."""
    return {
        "action": "opened",
        "issue": {"number": 1, "title": "Spelling error in the README file",
                  "user": _user("mona", 21031067), "labels": [], "state": "open",
                  "body": "It looks like you accidently spelled 'commit' with two 't's."},
        "repository": _repository(), "sender": _user("mona", 21031067),
    }  # fmt: skip


def gitlab_push() -> dict[str, Any]:
    """A GitLab push hook (X-Gitlab-Event: Push Hook), trimmed to its documented shape."""
    return {
        "object_kind": "push", "event_name": "push", "before": "95790bf8", "after": SHA,
        "ref": "refs/heads/main", "ref_protected": True, "checkout_sha": SHA,
        "user_id": 4, "user_name": "John Smith", "user_username": "jsmith",
        "project_id": 15,
        "project": {"id": 15, "name": "Diaspora", "path_with_namespace": "mike/diaspora",
                    "default_branch": "main", "web_url": "http://example.com/mike/diaspora"},
        "commits": [{"id": SHA, "message": "Update Catalan translation", "added": [],
                     "modified": ["CHANGELOG"], "removed": []}],
        "total_commits_count": 1,
    }  # fmt: skip


def signed(payload: dict[str, Any], event: str, *, form: bool = False) -> tuple[bytes, dict]:
    """Body and headers of a GitHub delivery, signed with the job's secret; ``form``: the
    hook's ``application/x-www-form-urlencoded`` content type (``payload=<json>``)."""
    text = json.dumps(payload)
    if form:
        body = urllib.parse.urlencode({"payload": text}).encode()
        ctype = "application/x-www-form-urlencoded"
    else:
        body, ctype = text.encode(), "application/json"
    return body, {
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, "sha256").hexdigest(),
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Event": event,
        "Content-Type": ctype,
        "User-Agent": "GitHub-Hookshot/044aadd",
    }  # fmt: skip


RULES = {
    "verify": "github",
    "secret": "env:GH_HOOK",
    "events": ["push"],
    "when": {"body.ref": "refs/heads/main", "body.deleted": False},
    "params": {"ref": "body.ref", "repo": "body.repository.full_name",
               "sha": "body.head_commit.id"},
}  # fmt: skip


@pytest.fixture
def deploying(serve, tmp_path: Path, monkeypatch):
    """A server with ci/deploy (Python) taking GitHub pushes to main, mapped to parameters,
    and gl/deploy (a script) taking GitLab pushes."""
    monkeypatch.setenv("GH_HOOK", SECRET)
    monkeypatch.setenv("GL_HOOK", GL_TOKEN)
    jobs = tmp_path / "jobs"
    (jobs / "ci").mkdir(parents=True)
    (jobs / "ci" / "deploy.py").write_text(DEPLOY)
    (jobs / "gl").mkdir()
    script = jobs / "gl" / "deploy.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    table = {
        "ci/deploy": RULES,
        "gl/*": {"verify": "gitlab", "secret": "env:GL_HOOK", "events": ["Push Hook"],
                 "params": {"project": "body.project.path_with_namespace",
                            "ref": "body.ref"}},
    }  # fmt: skip
    return serve(jobs=(jobs,), policies=policies_from_toml(table, tmp_path / "runner.toml"))


def _runs(srv) -> list[dict]:
    with srv.client() as c:
        return c.get("/_runs").json()["runs"]


def test_a_github_push_runs_the_job_with_the_parameters_mapped_from_it(deploying):
    """ref, repo and sha come from the push payload; the run and ctx.trigger say so."""
    body, headers = signed(github_push(), "push")
    with deploying.client() as c:
        r = c.post("/ci/deploy?env=prod", content=body, headers=headers | {"Prefer": "wait"})
        record = c.get(f"/_runs/{r.headers['x-run-id']}").json()
    assert r.status_code == 200, r.text
    lines = r.text.splitlines()
    assert lines[0] == f"deploying octo-org/hello@{SHA} from refs/heads/main to prod"
    fields = {"ref": "refs/heads/main", "repo": "octo-org/hello", "sha": SHA}
    assert lines[1] == f"trigger github push {headers['X-GitHub-Delivery']} {json.dumps(fields)}"
    assert record["params"] == fields | {"env": "prod"}
    assert record["trigger"]["fields"] == fields
    assert record["trigger"]["event"] == "push"


def test_an_issues_delivery_to_a_push_only_job_starts_nothing_and_says_why(deploying):
    """X-GitHub-Event: issues → 202 "ignored: …" naming the event; no run exists."""
    body, headers = signed(github_issue(), "issues")
    with deploying.client() as c:
        r = c.post("/ci/deploy", content=body, headers=headers)
        metrics = c.get("/_metrics").text
    assert r.status_code == 202
    assert "x-run-id" not in r.headers
    assert r.json()["ignored"] is True
    assert r.json()["text"] == "ignored: event 'issues' is not one this job takes (push)"
    assert _runs(deploying) == []
    assert 'runner_webhook_deliveries_total{outcome="ignored",scheme="github"} 1.0' in metrics


def test_a_push_to_another_branch_misses_the_when_filter_and_starts_nothing(deploying):
    """when = { "body.ref" = "refs/heads/main" }: a push to dev is ignored, saying what it
    found and what the job takes."""
    body, headers = signed(github_push("refs/heads/dev"), "push")
    with deploying.client() as c:
        r = c.post("/ci/deploy", content=body, headers=headers)
    assert r.status_code == 202
    assert r.json()["reason"] == 'body.ref is "refs/heads/dev", not "refs/heads/main"'
    assert _runs(deploying) == []


def test_an_ignored_delivery_is_logged_at_info(deploying, caplog):
    """The operator can see why a sender's deliveries start nothing."""
    body, headers = signed(github_push("refs/heads/dev"), "push")
    with caplog.at_level("INFO", logger="runner.http"), deploying.client() as c:
        c.post("/ci/deploy", content=body, headers=headers)
    said = [r.getMessage() for r in caplog.records if r.name == "runner.http"]
    assert any(
        f"/ci/deploy: delivery {headers['X-GitHub-Delivery']} (github) ignored: body.ref is" in m
        for m in said
    ), said


def test_mapped_parameters_meet_the_same_admission_as_http_ones(serve, tmp_path, monkeypatch):
    """A mapping that finds nothing for a required parameter, and a value its pattern
    refuses: one 422 listing both, each saying where it came from; nothing runs."""
    monkeypatch.setenv("GH_HOOK", SECRET)
    jobs = tmp_path / "jobs"
    (jobs / "ci").mkdir(parents=True)
    (jobs / "ci" / "deploy.py").write_text(DEPLOY)
    rules = {k: v for k, v in RULES.items() if k != "when"}  # let the deletion through
    policies = policies_from_toml({"ci/deploy": rules}, tmp_path / "runner.toml")
    srv = serve(jobs=(jobs,), policies=policies)
    # GitHub's own example: a tag deleted — no head commit, a ref outside refs/heads/.
    body, headers = signed(github_push("refs/tags/simple-tag", "0" * 40), "push")
    with srv.client() as c:
        r = c.post("/ci/deploy", content=body, headers=headers)
        twice = c.post("/ci/deploy?sha=" + SHA, content=body, headers=headers)
    assert r.status_code == 422
    errors = {e["name"]: e["reason"] for e in r.json()["errors"]}
    assert errors["sha"] == "required: body.head_commit.id found nothing in this delivery"
    assert errors["ref"].endswith("(from body.ref)") and "pattern" in errors["ref"]
    assert set(errors) == {"sha", "ref"}
    assert twice.status_code == 422
    assert twice.json()["errors"] == [
        {"name": "sha",
         "reason": "given in the query string and mapped from the delivery by runner.toml"}
    ]  # fmt: skip
    assert _runs(srv) == []


def test_githubs_form_content_type_is_read_as_its_json_payload(deploying):
    """A hook set to application/x-www-form-urlencoded sends payload=<json>: same mapping."""
    body, headers = signed(github_push(), "push", form=True)
    with deploying.client() as c:
        r = c.post("/ci/deploy", content=body, headers=headers | {"Prefer": "wait"})
    assert r.status_code == 200, r.text
    assert r.text.startswith(f"deploying octo-org/hello@{SHA} from refs/heads/main to staging")


def test_a_gitlab_push_reaches_a_script_as_parameters_and_its_body_stays_dollar_one(deploying):
    """GitLab's Push Hook mapped by a pattern entry (gl/*): env vars from the payload, $1
    the payload itself; a Tag Push Hook is ignored."""
    body = json.dumps(gitlab_push()).encode()
    headers = {"X-Gitlab-Token": GL_TOKEN, "X-Gitlab-Event": "Push Hook",
               "X-Gitlab-Event-UUID": str(uuid.uuid4()),
               "Content-Type": "application/json"}  # fmt: skip
    with deploying.client() as c:
        r = c.post("/gl/deploy", content=body, headers=headers | {"Prefer": "wait"})
        tag = c.post(
            "/gl/deploy",
            content=body,
            headers=headers | {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Event-UUID": "t-1"},
        )
    assert r.status_code == 200, r.text
    assert r.text.splitlines()[:2] == [
        "project=mike/diaspora ref=refs/heads/main",
        'body-kind={"object_kind": "push"',
    ]
    assert tag.status_code == 202
    assert tag.json()["reason"] == "event 'Tag Push Hook' is not one this job takes (Push Hook)"


def test_a_slack_delivery_that_is_ignored_gets_a_200_with_text(serve, tmp_path, monkeypatch):
    """Slack shows a 200's text to the user and takes any other status for a failure."""
    monkeypatch.setenv("SLACK_HOOK", "8f742231b10e8888abcd99yyyzzz85a5")
    rules = {"verify": "slack", "secret": "env:SLACK_HOOK", "events": ["/deploy"]}
    srv = serve(policies=policies_from_toml({"sh/echo": rules}, tmp_path / "runner.toml"))
    body = b"command=%2Fother&text=now&user_id=U1"
    ts = str(int(time.time()))
    sig = hmac.new(b"8f742231b10e8888abcd99yyyzzz85a5", f"v0:{ts}:".encode() + body,
                   hashlib.sha256).hexdigest()  # fmt: skip
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={sig}",
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    with srv.client() as c:
        r = c.post("/sh/echo", content=body, headers=headers)
    assert r.status_code == 200
    assert r.json()["text"] == "ignored: event '/other' is not one this job takes (/deploy)"
    assert _runs(srv) == []


def test_the_example_in_the_readme_is_a_valid_runner_toml(tmp_path):
    """README's [jobs."ci/deploy"] example loads: its expressions compile."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index('```toml\n[jobs."ci/deploy"]\nverify = "github"') + len("```toml\n")
    table = tomllib.loads(readme[start : readme.index("```", start)])
    (policy,) = policies_from_toml(table["jobs"], tmp_path / "runner.toml")
    assert policy.events == ("push",)
    assert [name for name, _ in policy.params] == ["ref", "repo", "sha"]

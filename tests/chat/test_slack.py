"""Slack slash commands (issue 9, item 1) against a fake Slack on loopback: a real HTTP
server taking the response_url posts and the Web API's chat.postMessage, failing on
purpose where a test says so."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from runner.policy import policies_from_toml
from tests.conftest import Served, wait_final
from tests.receiver import Receiver
from tests.webhooks.signing import slack_headers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
TEAM, USER = "T0001", "U2147483697"


@pytest.fixture
def slack() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SECRET", SECRET)
    monkeypatch.setenv("SLACK_BOT", BOT)


def _serve(serve: Callable[..., Served], slack: Receiver, **over: Any) -> Served:
    over.setdefault("slack_allow", (f"{TEAM}/*",))
    return serve(slack_signing_secret="env:SLACK_SECRET", slack_api_url=slack.url + "/api",
                 **over)  # fmt: skip


def command(text: str, response_url: str, *, user: str = USER, n: int = 1) -> bytes:
    """A slash command's form, as Slack sends it (fields from Slack's documentation)."""
    return urlencode({
        "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": TEAM, "team_domain": "example",
        "channel_id": "C2147483705", "channel_name": "deploys", "user_id": user,
        "user_name": "steve", "command": "/deploy", "text": text, "api_app_id": "A123456",
        "response_url": response_url, "trigger_id": f"13345224609.738474920.{n}",
    }).encode()  # fmt: skip


def post(c: httpx.Client, body: bytes, *, retry: int | None = None, ts: int | None = None):
    headers = slack_headers(SECRET.encode(), body, ts or int(time.time()))
    headers["content-type"] = "application/x-www-form-urlencoded"
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return c.post("/_chat/slack", content=body, headers=headers)


def _notices(c: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = c.get(f"/_runs/{run_id}/notifications").json()["notifications"]
    return found


def _run_id(answer: dict[str, Any]) -> str:
    text = answer["text"]
    return text.split("run `", 1)[1].split("`", 1)[0]


def test_a_command_is_acknowledged_at_once_and_its_result_posted_back(serve, slack):
    """Under a second: the run named in the channel with its link. Then the result with
    its state, exit code and last lines arrives at the response_url, once."""
    srv = _serve(serve, slack)
    with srv.client() as c:
        t0 = time.monotonic()
        answer = post(c, command("py/lines n=3", slack.url + "/resp/1"))
        took = time.monotonic() - t0
        assert answer.status_code == 200 and took < 1.0
        ack = answer.json()
        assert ack["response_type"] == "in_channel"
        run_id = _run_id(ack)
        assert f"<{srv.url}/#/run/{run_id}|follow it>" in ack["text"]
        assert f"<@{USER}>" in ack["text"]
        run = wait_final(c, run_id)
        assert run["caller"] == f"slack:{TEAM}/{USER}"
        assert run["trigger"]["scheme"] == "slack" and "reply" not in run["trigger"]
        (final,) = slack.wait_for("/resp/1", 1)
    msg = final.json()
    assert msg["text"].startswith("✅ /py/lines succeeded in ") and msg["text"].endswith("(exit 0)")
    shown = "\n".join(b["text"]["text"] for b in msg["blocks"])
    assert "```line 1\nline 2\nline 3```" in shown and run_id in shown
    time.sleep(0.3)
    assert len(slack.at("/resp/1")) == 1


def test_a_failed_run_is_reported_with_its_reason_and_code(serve, slack):
    srv = _serve(serve, slack)
    with srv.client() as c:
        run_id = _run_id(post(c, command("py/fail", slack.url + "/resp/f")).json())
        wait_final(c, run_id)
    msg = slack.wait_for("/resp/f", 1)[0].json()
    assert msg["text"].startswith("❌ /py/fail failed") and msg["text"].endswith("(exit 3)")
    shown = "\n".join(b["text"]["text"] for b in msg["blocks"])
    assert "the deployment target refused the change" in shown


def test_bad_parameters_are_listed_each_before_any_run(serve, slack):
    """The same admission as HTTP: every problem, to the person who typed it; no run."""
    srv = _serve(serve, slack)
    with srv.client() as c:
        answer = post(c, command("py/echo rg=Bad_Name count=99 size=huge", slack.url + "/r"))
        assert answer.status_code == 200
        msg = answer.json()
        assert c.get("/_runs").json()["runs"] == []
    assert msg["response_type"] == "ephemeral"
    text = msg["text"]
    assert text.startswith("⛔ /py/echo was not started")
    for name in ("rg", "count", "size"):
        assert f"• `{name}`:" in text
    assert "`/deploy py/echo --help`" in text
    assert slack.at("/r") == []


def test_a_slack_retry_starts_no_second_run(serve, slack):
    """Slack resends the same body with a new timestamp and signature: same run."""
    srv = _serve(serve, slack)
    body = command("py/echo rg=a", slack.url + "/resp/r")
    with srv.client() as c:
        first = _run_id(post(c, body).json())
        again = post(c, body, retry=1, ts=int(time.time()) + 1).json()
        assert _run_id(again) == first and "already started" in again["text"]
        assert len(c.get("/_runs").json()["runs"]) == 1


def test_a_user_not_allowed_is_refused_in_words(serve, slack, tmp_path):
    """A job naming its chat users: anyone else is told who they are and what to ask."""
    policies = policies_from_toml({"py/echo": {"allow": [f"slack:{TEAM}/UALLOWED"]}}, tmp_path)
    srv = _serve(serve, slack, policies=policies, slack_allow=())
    with srv.client() as c:
        refused = post(c, command("py/echo rg=a", slack.url + "/x")).json()
        allowed = post(c, command("py/echo rg=a", slack.url + "/y", user="UALLOWED")).json()
        other = post(c, command("py/lines", slack.url + "/z", user="UALLOWED")).json()
    assert refused["response_type"] == "ephemeral"
    assert refused["text"].startswith(f"⛔ slack:{TEAM}/{USER} may not run /py/echo")
    assert f'add "slack:{TEAM}/{USER}"' in refused["text"]
    assert "started" in allowed["text"]
    # A job without an allow list takes chat users only from [chat.slack] allow (none).
    assert other["text"].startswith(f"⛔ slack:{TEAM}/UALLOWED may not run /py/lines")


def test_help_lists_jobs_and_a_jobs_parameters(serve, slack):
    srv = _serve(serve, slack)
    with srv.client() as c:
        listing = post(c, command("help", slack.url + "/h")).json()["text"]
        one = post(c, command("py/echo --help", slack.url + "/h")).json()["text"]
        empty = post(c, command("", slack.url + "/h")).json()["text"]
    assert "• `py/echo` — Print each parameter as name=value" in listing and listing == empty
    assert one.startswith("`/deploy py/echo rg=…`")
    assert "• `size` (string; default 'small', one of small, large)" in one
    assert "• `rg` (string; required, matching `^[a-z][a-z0-9-]{0,20}$`)" in one


def test_quotes_and_what_chat_clients_do_to_them(serve, slack):
    """Typographic quotes and Slack's escapes are undone before the shell-like split."""
    srv = _serve(serve, slack)
    with srv.client() as c:
        run_id = _run_id(
            post(c, command("/sh/env greeting=“hello &amp; bye”", slack.url + "/q")).json()
        )
        wait_final(c, run_id)
        log = c.get(f"/_runs/{run_id}/log").text
        bad = post(c, command('py/echo rg="open', slack.url + "/q")).json()["text"]
    assert "greeting=hello & bye" in log
    assert bad.startswith("⛔ cannot read the command: No closing quotation")


def test_secrets_are_not_taken_from_chat(serve, slack):
    srv = _serve(serve, slack)
    with srv.client() as c:
        given = post(c, command("py/secret user=a pw=hunter2", slack.url + "/s")).json()
        missing = post(c, command("py/secret user=a", slack.url + "/s")).json()
        assert c.get("/_runs").json()["runs"] == []
    assert given["text"].startswith("⛔ pw is a secret: a chat message is not a secret channel")
    assert "hunter2" not in given["text"]
    assert missing["text"].startswith("⛔ /py/secret needs the secret pw")


def test_a_forged_command_is_refused(serve, slack):
    srv = _serve(serve, slack)
    body = command("py/echo rg=a", slack.url + "/f")
    with srv.client() as c:
        headers = slack_headers(b"not-the-secret", body, int(time.time()))
        answer = c.post("/_chat/slack", content=body, headers=headers)
        assert answer.status_code == 403
        assert SECRET not in answer.text and "SLACK_SECRET" not in answer.text
        assert c.get("/_runs").json()["runs"] == []


def test_a_failing_response_url_still_gets_exactly_one_result(serve, slack):
    slack.answer("/resp/flaky", 500, 502, 503)
    srv = _serve(serve, slack, notify_backoff=0.05)
    with srv.client() as c:
        run_id = _run_id(post(c, command("py/echo rg=a", slack.url + "/resp/flaky")).json())
        slack.delivered("/resp/flaky")
        time.sleep(0.5)
        notices = c.get(f"/_runs/{run_id}/notifications").json()["notifications"]
    assert [r.status for r in slack.at("/resp/flaky")] == [500, 502, 503, 200]
    assert [t["status"] for t in notices[0]["tries"]] == [500, 502, 503, 200]


def test_an_expired_response_url_falls_back_to_the_bot(serve, slack):
    """Slack answers 404 when the address expired or was used: the bot posts instead, to
    the command's channel, with its token."""
    slack.answer("/resp/old", 404)
    slack.answer("/api/chat.postMessage", body=b'{"ok": true, "ts": "1.2"}')
    srv = _serve(serve, slack, slack_bot_token="env:SLACK_BOT")
    with srv.client() as c:
        run_id = _run_id(post(c, command("py/echo rg=a", slack.url + "/resp/old")).json())
        got = slack.delivered("/api/chat.postMessage")
    assert got.headers["authorization"] == f"Bearer {BOT}"
    sent = got.json()
    assert sent["channel"] == "C2147483705" and sent["text"].startswith("✅ /py/echo succeeded")
    assert run_id in str(sent["blocks"])


def test_progress_is_posted_at_most_every_n_seconds_and_three_times(serve, slack):
    srv = _serve(serve, slack, slack_progress=0.3)
    with srv.client() as c:
        run_id = _run_id(
            post(c, command("py/lines n=40 every=1 pause=0.05", slack.url + "/p")).json()
        )
        wait_final(c, run_id)
        slack.wait_for("/p", 4)
        time.sleep(0.3)
    posts = [r.json()["text"] for r in slack.at("/p")]
    progress = [p for p in posts if p.startswith("⏳ /py/lines running for")]
    # Forty lines over two seconds: three posts (the most a command gets), not forty.
    assert len(progress) == 3 and posts[-1].startswith("✅")


def test_kill_9_between_the_end_and_the_post_delivers_after_restart(serve_process, tmp_path):
    """Slack's reply address is down when the run ends; the runner is killed; both come
    back: the result is posted, once."""
    state = tmp_path / "state"
    with Receiver() as down:
        port = int(down.url.rsplit(":", 1)[1])
    env = {"SLACK_SECRET": SECRET, "RUNNER_SLACK_SIGNING_SECRET": "env:SLACK_SECRET",
           "RUNNER_SLACK_ALLOW": f"{TEAM}/*", "RUNNER_NOTIFY_BACKOFF": "0.2"}  # fmt: skip
    srv = serve_process(state, env=env)
    url = f"http://127.0.0.1:{port}/resp/k"
    with srv.client() as c:
        run_id = _run_id(post(c, command("py/echo rg=a", url)).json())
        wait_final(c, run_id)
        deadline = time.monotonic() + 10
        while not any(n["attempts"] for n in _notices(c, run_id)):
            assert time.monotonic() < deadline, "the result was never tried"
            time.sleep(0.05)
    assert srv.proc is not None
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    with Receiver(port) as back:
        serve_process(state, env=env)
        got = back.delivered("/resp/k")
        assert got.json()["text"].startswith("✅ /py/echo succeeded")
        time.sleep(0.5)
        assert len([r for r in back.at("/resp/k") if r.status == 200]) == 1

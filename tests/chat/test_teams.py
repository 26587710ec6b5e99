"""Teams outgoing webhooks (issue 9, item 1): the synchronous answer within Teams' 5 s
names the run; the result goes to the Workflows URL (a fake on loopback) as a card."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.conftest import wait_final
from tests.receiver import Receiver
from tests.webhooks.signing import teams_headers

TOKEN = base64.b64encode(b"teams-outgoing-webhook-token-32b").decode()
OID = "f1c5f1c6-2a3b-4c5d-9e8f-0a1b2c3d4e5f"


@pytest.fixture
def workflows() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch, workflows: Receiver) -> None:
    monkeypatch.setenv("TEAMS_TOKEN", TOKEN)
    # A Workflows URL carries its signature: a secret, read from a source.
    monkeypatch.setenv("TEAMS_RESULT", workflows.url + "/workflows/run?sig=S3CRET")


def activity(text: str, *, oid: str = OID, n: int = 1) -> bytes:
    """An outgoing-webhook activity, shaped as Microsoft's documentation shows it."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({
        "type": "message", "id": f"14859834085{n}", "timestamp": now,
        "serviceUrl": "https://smba.trafficmanager.net/amer/", "channelId": "msteams",
        "from": {"id": "29:1XJKJMvc5GBtc2JwZq0oj8", "name": "Tim Jones", "aadObjectId": oid},
        "conversation": {"isGroup": True, "id": "19:abc@thread.skype"},
        "textFormat": "plain", "text": f"<at>runner</at>&nbsp;{text}",
    }).encode()  # fmt: skip


def _serve(serve, **over):
    over.setdefault("teams_allow", (OID,))
    return serve(teams_secret="env:TEAMS_TOKEN", teams_result_url="env:TEAMS_RESULT", **over)


def _post(c, body: bytes):
    return c.post("/_chat/teams", content=body, headers=teams_headers(TOKEN, body))


def test_a_message_is_answered_at_once_and_the_result_posted_as_a_card(serve, workflows):
    srv = _serve(serve)
    with srv.client() as c:
        t0 = time.monotonic()
        answer = _post(c, activity("py/fail how=code"))
        assert answer.status_code == 200 and time.monotonic() - t0 < 1.0
        reply = answer.json()
        assert reply["type"] == "message"
        run_id = reply["text"].split("run `", 1)[1].split("`", 1)[0]
        assert "The result will be posted here." in reply["text"]
        run = wait_final(c, run_id)
        assert run["caller"] == f"teams:{OID}"
        got = workflows.delivered("/workflows/run")
    card = got.json()["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    body = card["content"]["body"]
    assert body[0]["text"].startswith("❌ /py/fail failed") and body[0]["text"].endswith("(exit 7)")
    facts = {f["title"]: f["value"] for f in body[1]["facts"]}
    assert facts == {"Run": run_id, "State": "failed", "Exit code": "7"}
    assert "about to fail" in body[-1]["text"]
    assert card["content"]["actions"][0]["url"] == f"{srv.url}/#/run/{run_id}"


def test_someone_not_allowed_and_a_forged_message_are_refused(serve, workflows):
    srv = _serve(serve)
    with srv.client() as c:
        other = _post(c, activity("py/echo rg=a", oid="00000000-0000-0000-0000-000000000000"))
        body = activity("py/echo rg=a", n=2)
        wrong = base64.b64encode(b"x" * 32).decode()
        forged = c.post("/_chat/teams", content=body, headers=teams_headers(wrong, body))
        assert c.get("/_runs").json()["runs"] == []
    assert other.json()["text"].startswith(
        "⛔ teams:00000000-0000-0000-0000-000000000000 may not run /py/echo"
    )
    assert forged.status_code == 403


def test_the_result_url_is_not_kept_in_the_store(serve, workflows):
    srv = _serve(serve)
    with srv.client() as c:
        run_id = _post(c, activity("py/echo rg=a")).json()["text"].split("run `")[1][:26]
        wait_final(c, run_id)
        workflows.delivered("/workflows/run")
    srv.stop()
    from tests.conftest import files_containing

    assert files_containing(srv.state_dir, b"S3CRET") == []

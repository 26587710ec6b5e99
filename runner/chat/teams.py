"""Microsoft Teams outgoing webhooks: ``POST /_chat/teams``, answered within Teams' 5 s.

Teams sends a Bot Framework activity, HMAC-signed with the webhook's security token; its
text starts with the mention of the webhook (``<at>runner</at> vm/create rg=demo``) and may
carry HTML. The reply is the synchronous answer (the only one an outgoing webhook gets);
the result, as an Adaptive Card, goes to ``teams_result_url`` (a Workflows or incoming
webhook URL) through the outbox when one is configured.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from runner.chat import words
from runner.chat.starter import ChatStarter, ChatUser, Outcome
from runner.errors import BadRequest
from runner.notify.base import Links, Moment, Sent, notice_id
from runner.records import Event, Notice, RunRecord, Trigger
from runner.secrets import Watched
from runner.webhooks import verify

_MENTION = re.compile(r"<at>.*?</at>", re.S)
_TAG = re.compile(r"<[^>]+>")
RESULT_TARGET = "teams:result_url"  # the URL is read from the settings, never stored


def command_text(activity: Mapping[str, Any]) -> str:
    """The command: the activity's text without the mention, tags and entities."""
    text = activity.get("text")
    if not isinstance(text, str):
        return ""
    text = _MENTION.sub(" ", text, count=1)
    text = _TAG.sub(" ", text.replace("<br>", " ").replace("<br/>", " "))
    return html.unescape(text).replace("\xa0", " ").strip()


class TeamsChat:
    """Reads, verifies and answers outgoing-webhook messages."""

    def __init__(
        self, starter: ChatStarter, secret: Watched, links: Links, *, results: bool
    ) -> None:
        self.starter = starter
        self.secret = secret
        self.links = links
        self.results = results  # a result URL is configured

    async def answer(
        self, headers: Mapping[str, str], body: bytes, address: str | None, now: float
    ) -> dict[str, Any]:
        delivery = verify("teams", self.secret.current, headers, body, now=now)
        activity = json.loads(body)
        sender = activity.get("from") if isinstance(activity.get("from"), dict) else {}
        oid = sender.get("aadObjectId") or sender.get("id")
        if not isinstance(oid, str) or not oid:
            raise BadRequest("the activity names no sender (from.aadObjectId)")
        user = ChatUser("teams", oid, str(sender.get("name", "")))
        trigger = Trigger("teams", delivery.delivery_id, "message", address, {"at": repr(now)})
        outcome = await self.starter.handle(user, command_text(activity), key=body,
                                            trigger=trigger)  # fmt: skip
        return {"type": "message", "text": self.render(outcome)}

    def render(self, outcome: Outcome) -> str:
        how = "@runner"
        if outcome.kind == "help":
            if outcome.job is not None:
                return "\n\n".join(words.job_help(outcome.job, how))
            return "\n\n".join(words.job_lines(outcome.jobs, how))
        if outcome.kind == "refused":
            lines = [f"⛔ {outcome.text}"]
            lines += [f"• `{p.name}`: {p.reason}" for p in outcome.problems]
            return "\n\n".join(lines)
        run = outcome.run
        assert run is not None
        again = " (already started: the same message)" if outcome.kind == "replayed" else ""
        result = " The result will be posted here." if self.results else ""
        return (
            f"▶️ /{run.job} started{again}: run `{run.id}` — "
            f"[follow it]({self.links.page(run.id)}).{result}"
        )


class TeamsReplies:
    """Posts a Teams-started run's result as an Adaptive Card to the result URL."""

    channels: tuple[str, ...] = ("teams",)
    wants_tail = True

    def __init__(self, result_url: Watched, links: Links, *, deadline: float = 86400.0) -> None:
        self.result_url = result_url
        self.links = links
        self.deadline = deadline

    def compose(self, run: RunRecord, moment: Moment, tail: Sequence[str]) -> list[Notice]:
        if moment != "finished" or run.trigger.scheme != "teams":
            return []
        now = time.time()
        body = json.dumps(card(run, words.tail(tail), self.links.page(run.id)))
        return [Notice(notice_id(run.id, "finished", RESULT_TARGET), run.id, "teams",
                       RESULT_TARGET, body, created=now, deadline=now + self.deadline,
                       next_at=now)]  # fmt: skip

    def progress(self, run: RunRecord, event: Event) -> list[Notice]:
        return []

    async def send(self, http: httpx.AsyncClient, notice: Notice) -> Sent:
        url = self.result_url.current.reveal().decode("utf-8").strip()
        response = await http.post(
            url, content=notice.body, headers={"content-type": "application/json"}
        )
        return Sent.of(response, "the Teams result URL")


def card(run: RunRecord, tail: str, link: str) -> dict[str, Any]:
    """A message with one Adaptive Card (what Workflows and incoming webhooks take)."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": words.title(run), "weight": "Bolder", "wrap": True},
        {"type": "FactSet", "facts": [
            {"title": "Run", "value": run.id},
            {"title": "State", "value": run.state},
            {"title": "Exit code", "value": "-" if run.exit_code is None else str(run.exit_code)},
        ]},
    ]  # fmt: skip
    if run.reason and run.state != "succeeded":
        body.append({"type": "TextBlock", "text": run.reason, "wrap": True})
    if tail:
        body.append({"type": "TextBlock", "text": tail, "fontType": "Monospace", "wrap": True})
    content = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": "Open the run", "url": link}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": content}
        ],
    }

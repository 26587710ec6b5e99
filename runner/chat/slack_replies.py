"""What a slash command's run posts back to Slack, through the outbox: progress (at most
every ``slack_progress`` seconds, three at most) and the result — state, exit code,
duration, the last lines of output, the link.

To ``response_url`` while it lives (30 minutes, 5 posts: the acknowledgement is not one
of them, so three progress posts and the result fit); after that, with a bot token, by
``chat.postMessage`` to the command's channel; without one the result is given up, as the
acknowledgement said it would be.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from runner.chat import words
from runner.chat.slack import RESPONSE_URL_LIFE, message
from runner.notify.base import Links, Moment, Sent, notice_id
from runner.records import EV_ERROR, EV_OUTPUT, Event, Notice, RunRecord
from runner.secrets import Watched

MAX_PROGRESS = 3
EXPIRED = "Slack's reply address for this command has expired (30 minutes)"


class SlackReplies:
    """The outbox composer and sender of Slack replies."""

    channels: tuple[str, ...] = ("slack",)
    wants_tail = True

    def __init__(
        self,
        links: Links,
        *,
        response_type: str = "in_channel",
        progress_every: float = 60.0,
        bot_token: Watched | None = None,
        api_url: str = "https://slack.com/api",
        deadline: float = 86400.0,
    ) -> None:
        self.links = links
        self.response_type = response_type
        self.progress_every = progress_every
        self.bot_token = bot_token
        self.api_url = api_url.rstrip("/")
        self.deadline = deadline
        self._progress: dict[str, tuple[int, float]] = {}  # run → (posts, last post time)

    def compose(self, run: RunRecord, moment: Moment, tail: Sequence[str]) -> list[Notice]:
        reply = run.trigger.reply
        if moment != "finished" or run.trigger.scheme != "slack" or "response_url" not in reply:
            return []
        self._progress.pop(run.id, None)
        lines = words.tail(tail)
        head = f"{words.title(run)} — <{self.links.page(run.id)}|run {run.id}>"
        blocks: list[dict[str, Any]] = [_section(head)]
        if run.reason and run.state != "succeeded":
            blocks.append(_section(f"_{run.reason}_"))
        if lines:
            blocks.append(_section(f"```{lines}```"))
        body = message(words.title(run), response_type=self.response_type, blocks=blocks)
        return [self._notice(run, "finished", body, fallback=True, ttl=self.deadline)]

    def progress(self, run: RunRecord, event: Event) -> list[Notice]:
        if self.progress_every <= 0 or run.trigger.scheme != "slack":
            return []
        if event.kind not in (EV_OUTPUT, EV_ERROR) or "response_url" not in run.trigger.reply:
            return []
        now = time.time()
        posts, last = self._progress.get(run.id, (0, run.started or now))
        until = _until(run)
        if posts >= MAX_PROGRESS or now - last < self.progress_every or now > until - 60:
            return []
        self._progress[run.id] = (posts + 1, now)
        took = int(now - (run.started or now))
        text = f"⏳ /{run.job} running for {took} s — last line: `{words.tail([event.data])}`"
        body = message(text, response_type=self.response_type)
        return [self._notice(run, f"progress{posts + 1}", body, fallback=False, ttl=until - now)]

    def _notice(
        self, run: RunRecord, moment: str, msg: dict[str, Any], *, fallback: bool, ttl: float
    ) -> Notice:
        reply = run.trigger.reply
        now = time.time()
        body = {"message": msg, "channel": reply.get("channel_id"), "until": _until(run),
                "fallback": fallback}  # fmt: skip
        return Notice(notice_id(run.id, moment, "slack"), run.id, "slack", reply["response_url"],
                      json.dumps(body), created=now, deadline=now + ttl, next_at=now)  # fmt: skip

    async def send(self, http: httpx.AsyncClient, notice: Notice) -> Sent:
        data = json.loads(notice.body)
        if time.time() < data["until"]:
            response = await http.post(notice.target, json=data["message"])
            sent = Sent.of(response, "Slack's response_url")
            # 404: Slack says the address expired or was used up; the bot can still post.
            if sent.error is None or response.status_code != 404:
                return sent
        if not data["fallback"]:
            return Sent(None, EXPIRED, final=True)  # progress is only worth it on time
        if self.bot_token is None or not data.get("channel"):
            return Sent(None, f"{EXPIRED} and no slack_bot_token is configured", final=True)
        return await self._post_message(http, data)

    async def _post_message(self, http: httpx.AsyncClient, data: dict[str, Any]) -> Sent:
        assert self.bot_token is not None
        msg = {k: v for k, v in data["message"].items() if k in ("text", "blocks")}
        response = await http.post(
            f"{self.api_url}/chat.postMessage",
            json={"channel": data["channel"], **msg},
            headers={"Authorization": f"Bearer {self.bot_token.current.reveal().decode()}"},
        )
        sent = Sent.of(response, "Slack's chat.postMessage")
        if sent.error is not None:
            return sent
        answer = response.json() if response.content else {}
        if not answer.get("ok"):
            # The Web API answers 200 with ok=false: a missing scope, a channel the bot is
            # not in. Trying again will not change it.
            why = answer.get("error", "no reason given")
            return Sent(response.status_code, f"Slack's chat.postMessage refused: {why}",
                        final=why != "ratelimited")  # fmt: skip
        return sent


def _until(run: RunRecord) -> float:
    """When the command's response_url stops taking posts."""
    return float(run.trigger.reply.get("at", run.created)) + RESPONSE_URL_LIFE


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}

"""Slack slash commands: ``POST /_chat/slack``, answered within Slack's 3 seconds.

The request is verified with the app's signing secret (the same check as a Slack webhook
job), read as a slash command (``team_id``, ``user_id``, ``command``, ``text``,
``response_url``…), and started through :class:`ChatStarter`. The answer is the
acknowledgement — the run and its link, or help, or a refusal in words (those only to the
person who typed it). Progress and the result follow through the outbox
(:mod:`runner.chat.slack_replies`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from runner.chat import words
from runner.chat.starter import ChatStarter, ChatUser, Outcome
from runner.errors import BadRequest
from runner.notify.base import Links
from runner.records import Trigger
from runner.secrets import Watched
from runner.webhooks import verify

RESPONSE_URL_LIFE = 1800.0  # Slack: a response_url takes 5 posts within 30 minutes


def message(text: str, *, response_type: str = "ephemeral", **extra: Any) -> dict[str, Any]:
    return {"response_type": response_type, "text": text, **extra}


class SlackChat:
    """Reads, verifies and answers slash commands."""

    def __init__(
        self,
        starter: ChatStarter,
        secret: Watched,
        links: Links,
        *,
        response_type: str = "in_channel",
        bot: bool = False,
    ) -> None:
        self.starter = starter
        self.secret = secret  # read at each request: a rotated secret counts at once
        self.links = links
        self.response_type = response_type
        self.bot = bot  # a bot token can post results after response_url expires

    async def answer(
        self, headers: Mapping[str, str], body: bytes, address: str | None, now: float
    ) -> dict[str, Any]:
        """Slack's answer to a request; SignatureError (→ 403) if Slack did not sign it."""
        delivery = verify("slack", self.secret.current, headers, body, now=now)
        if delivery.kind == "url_verification":
            return {"challenge": delivery.challenge}
        if not delivery.runs:
            return {}  # ssl_check
        form = _form(body)
        if "command" not in form or "user_id" not in form:
            raise BadRequest(
                "this endpoint takes Slack slash commands; point the app's Events API and "
                "interactivity elsewhere"
            )
        command = form["command"]
        user = ChatUser("slack", f"{form.get('team_id', '-')}/{form['user_id']}",
                        form.get("user_name", ""))  # fmt: skip
        reply = {"response_url": form.get("response_url", ""), "at": repr(now),
                 "channel_id": form.get("channel_id", ""), "user_id": form["user_id"]}  # fmt: skip
        trigger = Trigger("slack", delivery.delivery_id, "command", address,
                          {k: v for k, v in reply.items() if v})  # fmt: skip
        outcome = await self.starter.handle(user, form.get("text", ""), key=body, trigger=trigger)
        return self.render(outcome, command, form["user_id"])

    def render(self, outcome: Outcome, command: str, user_id: str) -> dict[str, Any]:
        if outcome.kind == "help":
            if outcome.job is not None:
                return message("\n".join(words.job_help(outcome.job, command)))
            return message("\n".join(words.job_lines(outcome.jobs, command)))
        if outcome.kind == "refused":
            lines = [f"⛔ {outcome.text}"]
            lines += [f"• `{p.name}`: {p.reason}" for p in outcome.problems]
            if outcome.problems and outcome.job is not None:
                lines.append(f"`{command} {outcome.job.path} --help` lists its parameters.")
            return message("\n".join(lines))
        run = outcome.run
        assert run is not None
        again = " (already started: this is the same command)" if outcome.kind == "replayed" else ""
        text = (
            f"▶️ /{run.job} started by <@{user_id}>{again}: run `{run.id}` — "
            f"<{self.links.page(run.id)}|follow it>"
        )
        if run.timeout > RESPONSE_URL_LIFE and not self.bot:
            text += (
                "\n_If it runs over 30 minutes, its result cannot be posted here: Slack's "
                "reply address expires and no bot token (slack_bot_token) is configured._"
            )
        return message(text, response_type=self.response_type)


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not a form, as Slack sends slash commands") from None
    return {name: values[0] for name, values in fields.items()}

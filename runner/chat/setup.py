"""The chat platforms the settings enable, with their secrets read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner.chat.slack_replies import SlackReplies
from runner.chat.teams import TeamsReplies
from runner.notify.base import Composer, Links
from runner.settings import ChatSettings
from runner.webhooks import Secret, check_secret, load_secret


@dataclass(frozen=True)
class Chat:
    """What is configured: Slack when it has a signing secret, Teams a security token."""

    settings: ChatSettings
    slack: tuple[Secret, ...] = ()
    slack_bot: Secret | None = None
    teams: tuple[Secret, ...] = ()
    teams_result_url: str | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        """The endpoints served: each verifies its platform's signature itself."""
        return (("/_chat/slack",) if self.slack else ()) + (("/_chat/teams",) if self.teams else ())

    def composers(self, links: Links, deadline: float) -> list[Composer]:
        out: list[Composer] = []
        s = self.settings
        if self.slack:
            out.append(SlackReplies(links, response_type=s.slack_response,
                                    progress_every=s.slack_progress, bot_token=self.slack_bot,
                                    api_url=s.slack_api_url, deadline=deadline))  # fmt: skip
        if self.teams and self.teams_result_url:
            out.append(TeamsReplies(self.teams_result_url, links, deadline=deadline))
        return out


def load(settings: ChatSettings, environ: Mapping[str, str]) -> Chat:
    """Read the chat secrets their sources name; ConfigError in words when one is wrong."""
    slack: tuple[Secret, ...] = ()
    teams: tuple[Secret, ...] = ()
    if settings.slack_signing_secret:
        slack = (load_secret(settings.slack_signing_secret, environ),)
    if settings.teams_secret:
        teams = (load_secret(settings.teams_secret, environ),)
        check_secret("teams", teams)
    bot = load_secret(settings.slack_bot_token, environ) if settings.slack_bot_token else None
    result = None
    if settings.teams_result_url:
        result = load_secret(settings.teams_result_url, environ).reveal().decode().strip()
    return Chat(settings, slack, bot, teams, result)

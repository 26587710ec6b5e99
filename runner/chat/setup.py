"""The chat platforms the settings enable, their secrets held by the process's secret
sources (env:, file: or keyvault:, read each time they are used: a rotation needs no
restart)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runner.chat.slack_replies import SlackReplies
from runner.chat.teams import TeamsReplies
from runner.notify.base import Composer, Links
from runner.secrets import Secret, SecretSources, Watched
from runner.settings import ChatSettings
from runner.webhooks.teams import teams_key


@dataclass(frozen=True)
class Chat:
    """What is configured: Slack when it has a signing secret, Teams a security token."""

    settings: ChatSettings
    slack: Watched | None = None
    slack_bot: Watched | None = None
    teams: Watched | None = None
    teams_result_url: Watched | None = None

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


def _teams_token(secret: Secret) -> None:
    teams_key(secret)  # ConfigError naming the source when the token is not base64


def load(settings: ChatSettings, sources: SecretSources) -> Chat:
    """Hold the chat secrets their sources name; ConfigError in words when one is wrong."""

    def watch(spec: str | None, check: Callable[[Secret], None] | None = None) -> Watched | None:
        return sources.watch(spec, check=check) if spec else None

    return Chat(
        settings,
        slack=watch(settings.slack_signing_secret),
        slack_bot=watch(settings.slack_bot_token),
        teams=watch(settings.teams_secret, check=_teams_token),
        teams_result_url=watch(settings.teams_result_url),
    )

"""``POST /_chat/slack`` and ``POST /_chat/teams``: thin — read the body, let the
platform's handler verify and answer, render its answer as JSON.

The auth middleware lets these paths through (the platforms send no runner credentials);
each handler verifies its platform's signature before reading anything, and a refused
signature is a 403 problem like a webhook job's.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runner.auth import RateLimiter
from runner.chat import Chat
from runner.chat.slack import SlackChat
from runner.chat.starter import ChatStarter
from runner.chat.teams import TeamsChat
from runner.notify.base import Links
from runner.service import Runs
from runner.settings import Settings
from runner.web.gate import public_refusal
from runner.web.intake import read_body
from runner.webhooks import SignatureError

log = logging.getLogger("runner.security")


class Answering(Protocol):
    async def answer(
        self, headers: Any, body: bytes, address: str | None, now: float
    ) -> dict[str, Any]: ...


def routes(chat: Chat, runs: Runs, settings: Settings, links: Links) -> list[BaseRoute]:
    sec = settings.security
    out: list[BaseRoute] = []

    def limiter() -> RateLimiter | None:
        return RateLimiter(sec.rate_limit, sec.rate_burst) if sec.rate_limit else None

    if chat.slack:
        starter = ChatStarter(runs, "slack", chat.settings.slack_allow, limiter())
        slack = SlackChat(starter, chat.slack, links,
                          response_type=chat.settings.slack_response,
                          bot=chat.slack_bot is not None)  # fmt: skip
        out.append(Route("/_chat/slack", _endpoint(slack, "slack"), methods=["POST"]))
    if chat.teams:
        starter = ChatStarter(runs, "teams", chat.settings.teams_allow, limiter())
        teams = TeamsChat(starter, chat.teams, links, results=bool(chat.teams_result_url))
        out.append(Route("/_chat/teams", _endpoint(teams, "teams"), methods=["POST"]))
    return out


def _endpoint(handler: Answering, platform: str) -> Any:
    async def endpoint(request: Request) -> Response:
        limits = request.app.state.limits
        body = await read_body(request, limits.max_body_bytes, limits.body_timeout)
        address = request.client.host if request.client else None
        try:
            answer = await handler.answer(request.headers, body, address, time.time())
        except SignatureError as exc:
            log.warning("%s command refused: %s", platform, exc)
            return public_refusal(exc)
        return JSONResponse(answer)

    return endpoint

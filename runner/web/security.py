"""The security layers in front of the app, built from settings at start-up.

request ─► SecurityHeaders ─► CORS (only if origins are configured)
        ─► WebhookGate: a job with `verify` → signature over the raw body, or 403;
                        ping / ssl_check / url_verification answered here
        ─► AuthMiddleware: Basic (htpasswd) / Bearer (tokens) → Principal, or 401;
                           token job patterns (403), rate limit per principal (429)
        ─► Starlette routes: job policy `allow` (403), replayed deliveries, runs
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.auth import AuthMiddleware, Htpasswd, Principal, RateLimiter, TokenStore
from runner.auth.bind import check_bind
from runner.errors import PayloadTooLarge, RequestError
from runner.policy import JobPolicy, policy_for
from runner.settings import Settings
from runner.web.problems import from_error, problem
from runner.webhooks import (
    MemoryReplayGuard,
    ReplayGuard,
    Secret,
    SignatureError,
    check_secret,
    load_secret,
    verify,
)

log = logging.getLogger("runner.security")
DELIVERY_KEY = "runner.delivery"


@dataclass
class Security:
    """Credentials, webhook secrets and guards of one server."""

    htpasswd: Htpasswd | None = None
    tokens: TokenStore | None = None
    limiter: RateLimiter | None = None
    policies: tuple[JobPolicy, ...] = ()
    secrets: dict[str, list[Secret]] = field(default_factory=dict)  # by policy job pattern
    replays: ReplayGuard = field(default_factory=MemoryReplayGuard)
    cors_origins: tuple[str, ...] = ()
    body_limit: int = 1024 * 1024
    body_timeout: float = 30.0

    @property
    def authenticating(self) -> bool:
        return self.htpasswd is not None or self.tokens is not None

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str]) -> Security:
        """Load credential files and webhook secrets; refuse an open non-loopback server."""
        htpasswd = Htpasswd(settings.htpasswd) if settings.htpasswd else None
        tokens = TokenStore(settings.tokens_path) if settings.tokens_path.is_file() else None
        check_bind(settings.host, htpasswd is not None or tokens is not None,
                   settings.insecure_no_auth)  # fmt: skip
        secrets: dict[str, list[Secret]] = {}
        for policy in settings.policies:
            if policy.verify:
                loaded = [load_secret(spec, environ) for spec in policy.secrets]
                check_secret(policy.verify, loaded)
                secrets[policy.job] = loaded
        limiter = (
            RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        )
        return cls(
            htpasswd=htpasswd,
            tokens=tokens,
            limiter=limiter,
            policies=settings.policies,
            secrets=secrets,
            cors_origins=settings.cors_origins,
            body_limit=settings.max_body_bytes,
            body_timeout=settings.body_timeout,
        )

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The middleware stack around ``app`` (SecurityHeaders goes outside, in app.py)."""
        inner: ASGIApp = AuthMiddleware(
            app, htpasswd=self.htpasswd, tokens=self.tokens, limiter=self.limiter
        )
        if any(p.verify for p in self.policies):
            inner = WebhookGate(inner, self)
        if self.cors_origins:
            inner = CORSMiddleware(
                inner,
                allow_origins=list(self.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "Prefer"],
                expose_headers=["X-Run-Id", "Location"],
            )
        return inner


class WebhookGate:
    """Pure ASGI middleware: verify a delivery over the raw body before anything parses it."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or path.startswith("/_"):
            await self.app(scope, receive, send)
            return
        job = path.strip("/")
        policy = policy_for(self.security.policies, job)
        if policy is None or not policy.verify:
            await self.app(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(
                _read_all(receive, self.security.body_limit), self.security.body_timeout
            )
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            delivery = verify(
                policy.verify, self.security.secrets[policy.job], headers, body, now=time.time()
            )
        except TimeoutError:
            await problem(408, "Request timeout", "the body was not sent in time")(
                scope, receive, send
            )
            return
        except (SignatureError, RequestError) as exc:
            log.warning("webhook refused for /%s: %s", job, exc)
            await from_error(exc)(scope, receive, send)
            return
        if not delivery.runs:
            # GitHub's ping, Slack's ssl_check and url_verification: answered, never run.
            answer: dict[str, object] = {"ok": True, "kind": delivery.kind}
            if delivery.challenge is not None:
                answer = {"challenge": delivery.challenge}
            await _json(answer)(scope, receive, send)
            return
        scope["runner.principal"] = Principal.webhook(delivery.scheme, delivery.delivery_id, (job,))
        scope[DELIVERY_KEY] = delivery
        await self.app(scope, _replay(body, receive), send)


async def _read_all(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the already-read body once, then the real channel."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _json(body: dict[str, object]) -> JSONResponse:
    return JSONResponse(body, status_code=200)

"""The security layers in front of the app, built from settings at start-up.

request ─► SecurityHeaders (app.py) ─► CORS (only if origins are configured)
        ─► WebhookGate (gate.py): a job with `verify` → signature over the raw body, or 403;
                                  ping / ssl_check / url_verification answered there
        ─► AuthMiddleware (auth.py): Basic (htpasswd) / Bearer (tokens) → Principal, or
                                     401; token job patterns (403), rate limit (429)
        ─► routes → the Runs service: job policy `allow` (403), replayed deliveries, runs
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from runner.auth import Htpasswd, RateLimiter, TokenStore
from runner.auth.bind import check_bind
from runner.policy import Policies
from runner.secrets import SecretSources, Watched
from runner.settings import Settings
from runner.web.auth import AuthMiddleware
from runner.web.gate import WebhookGate
from runner.webhooks import check_secret


@dataclass
class Security:
    """Credentials, webhook secrets and guards of one server."""

    policies: Policies = field(default_factory=lambda: Policies((), ()))
    htpasswd: Htpasswd | None = None
    tokens: TokenStore | None = None
    limiter: RateLimiter | None = None
    # By policy job pattern: the sources as the process holds them (Key Vault's kept fresh).
    secrets: dict[str, list[Watched]] = field(default_factory=dict)
    cors_origins: tuple[str, ...] = ()
    body_limit: int = 1024 * 1024
    body_timeout: float = 30.0

    @property
    def authenticating(self) -> bool:
        return self.htpasswd is not None or self.tokens is not None

    @classmethod
    def from_settings(
        cls, settings: Settings, policies: Policies, sources: SecretSources
    ) -> Security:
        """Load credential files, watch webhook secrets (``env:``/``file:`` read now, Key
        Vault references when the runtime starts); refuse an open non-loopback server."""
        sec = settings.security
        htpasswd = Htpasswd(sec.htpasswd) if sec.htpasswd else None
        # Always a token store, even before its file exists: Bearer is then accepted as soon
        # as `runner token create` writes the first token, with no restart.
        tokens = TokenStore(settings.tokens_path)
        check_bind(settings.server.host, htpasswd is not None or tokens.present(),
                   sec.insecure_no_auth)  # fmt: skip
        secrets: dict[str, list[Watched]] = {}
        for policy in policies.all:
            if policy.verify:
                secrets[policy.job] = sources.watch_all(
                    policy.secrets, check=functools.partial(check_secret, policy.verify)
                )
        limiter = RateLimiter(sec.rate_limit, sec.rate_burst) if sec.rate_limit else None
        return cls(
            policies=policies,
            htpasswd=htpasswd,
            tokens=tokens,
            limiter=limiter,
            secrets=secrets,
            cors_origins=sec.cors_origins,
            body_limit=settings.limits.max_body_bytes,
            body_timeout=settings.limits.body_timeout,
        )

    def wrap(self, app: ASGIApp, *, verified_paths: tuple[str, ...] = ()) -> ASGIApp:
        """The middleware stack around ``app`` (SecurityHeaders goes outside, in app.py).
        ``verified_paths`` (the chat endpoints) need no credentials: their handlers verify
        the platform's signature."""
        inner: ASGIApp = AuthMiddleware(
            app,
            htpasswd=self.htpasswd,
            tokens=self.tokens,
            limiter=self.limiter,
            open_paths=("/_health", "/_ready", *verified_paths),
        )
        if self.policies.verifying:
            inner = WebhookGate(
                inner,
                self.policies,
                self.secrets,
                body_limit=self.body_limit,
                body_timeout=self.body_timeout,
            )
        if self.cors_origins:
            inner = CORSMiddleware(
                inner,
                allow_origins=list(self.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "Prefer"],
                expose_headers=["X-Run-Id", "Location"],
            )
        return inner

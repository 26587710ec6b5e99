"""Authentication as pure ASGI middleware: Basic (htpasswd) and Bearer (API tokens).

Per request, in order:

1. a Principal already in ``scope["runner.principal"]`` is kept: a webhook verifier placed
   before this middleware vouches for the delivery (only in-process code can set the scope);
2. an open path (``/_health``) passes as anonymous;
3. with no authentication configured, everyone is anonymous (``check_bind`` keeps that to
   loopback unless the operator opted in);
4. otherwise ``Authorization: Basic`` or ``Bearer`` must be valid, or the answer is 401 with
   a challenge for each configured scheme (RFC 9110 §11.6.1, RFC 6750 §3);
5. the principal's request rate is limited (429 + ``Retry-After``), and a ``POST`` to a job
   outside its job patterns is refused (403).

Failed logins are also limited per user name and client address, checked before bcrypt
runs, so guessing passwords neither scales nor burns CPU, and nobody's failures lock
another user (or a token) out; bcrypt runs in a few worker threads, off the loop.
"""

from __future__ import annotations

import base64
import binascii

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from runner.auth import ANONYMOUS, Htpasswd, Principal, RateLimiter, TokenStore
from runner.auth.ratelimit import retry_after
from runner.errors import Forbidden
from runner.web.problems import ProblemResponse, from_error, problem
from runner.web.routing import REFUSAL_KEY, SCOPE_KEY, job_path, route_path


def job_of(scope: Scope) -> str | None:
    """The job a request would start: ``POST /<job>`` outside the runner's ``/_`` space."""
    return job_path(scope) if scope.get("method") == "POST" else None


class AuthMiddleware:
    """Puts the request's :class:`Principal` in the scope, or answers 401/403/429."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        htpasswd: Htpasswd | None,
        tokens: TokenStore | None,
        # Probes carry no credentials: a load balancer or kubelet asks /_ready (it says
        # only whether this replica takes runs, and how many it has).
        open_paths: tuple[str, ...] = ("/_health", "/_ready"),
        limiter: RateLimiter | None = None,
        failed_logins: RateLimiter | None = None,
        realm: str = "runner",
        bcrypt_threads: int = 4,
    ) -> None:
        self.app = app
        self.htpasswd = htpasswd
        self.tokens = tokens
        self.open_paths = frozenset(open_paths)
        self.limiter = limiter
        # Ten failures in a row, then one more try every 10 s, per client address.
        self.failed_logins = failed_logins or RateLimiter(0.1, 10)
        self.bcrypt_threads = bcrypt_threads
        self._threads: anyio.CapacityLimiter | None = None
        self.challenges: list[bytes] = []
        if htpasswd is not None:
            self.challenges.append(f'Basic realm="{realm}", charset="UTF-8"'.encode())
        if tokens is not None:
            # Bearer is always offered: a token created while the server runs works at once.
            self.challenges.append(f'Bearer realm="{realm}"'.encode())
        self._required = htpasswd is not None or (tokens is not None and tokens.present())

    @property
    def configured(self) -> bool:
        """Whether credentials are required. A server that started with none (loopback
        only, see check_bind) requires them from the first token created on; once on, it
        stays on: revoking the last token never opens a server."""
        if not self._required and self.tokens is not None and self.tokens.present():
            self._required = True
        return self._required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.configured:
            await send({"type": "websocket.close", "code": 1008})  # no websocket API
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        preset = scope.get(SCOPE_KEY)
        if isinstance(preset, Principal):
            principal = preset
        elif route_path(scope) in self.open_paths:
            scope[SCOPE_KEY] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        elif not self.configured:
            principal = ANONYMOUS
        else:
            found = await self._authenticate(scope)
            if isinstance(found, ProblemResponse):
                await found(scope, receive, send)
                return
            principal = found
        refusal = self._authorize(scope, principal)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        scope[SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Principal | ProblemResponse:
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        if len(values) != 1:
            return self._unauthorized("this request needs credentials: Basic or Bearer")
        scheme, _, credentials = values[0].decode("latin-1").strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.htpasswd is not None:
            user, password = _basic(credentials.strip())
            # Failures count per user name *and* address: guessing bob's password locks
            # out bob from that address only, never alice, nor bob from elsewhere.
            key = f"{_address(scope)}|user:{user}"
            wait = self.failed_logins.wait(key)
            if wait > 0:
                scope[REFUSAL_KEY] = "login_throttled"
                return self._too_many(wait, "too many failed logins for this user from here")
            if user is not None:
                if self._threads is None:
                    self._threads = anyio.CapacityLimiter(self.bcrypt_threads)
                ok = await anyio.to_thread.run_sync(
                    self.htpasswd.check, user, password, limiter=self._threads
                )
                if ok:
                    return Principal.user(user)
            self.failed_logins.take(key)
            scope[REFUSAL_KEY] = f"failed_login basic user {user!r}"
            return self._unauthorized("wrong user name or password")
        if scheme == "bearer" and self.tokens is not None:
            # Not limited: a 256-bit token cannot be guessed, and checking one costs a
            # hash, so a failing neighbour can never lock a CI's token out.
            info = self.tokens.verify(credentials.strip())
            if info is not None:
                return Principal.token(info.name, info.jobs)
            scope[REFUSAL_KEY] = "failed_login bearer token"
            return self._unauthorized("unknown, revoked or expired token", bearer_error=True)
        return self._unauthorized(f"unsupported authentication scheme {scheme!r}")

    def _authorize(self, scope: Scope, principal: Principal) -> ProblemResponse | None:
        job = job_of(scope)
        # Starting runs is what spends the subscription; reading history stays cheap.
        if self.limiter is not None and job is not None:
            key = principal.caller
            if principal.kind == "anonymous":  # one bucket per address, not one for all
                key = _address(scope)
            elif principal.kind == "webhook":
                # One bucket per sender and job, not per delivery: replays to one job do
                # not starve a legitimate delivery to another.
                key = f"webhook:{principal.name}:{job}"
            wait = self.limiter.take(key)
            if wait > 0:
                scope[REFUSAL_KEY] = "rate_limited"
                return self._too_many(wait, f"too many runs started by {principal.caller}")
        if job is not None:
            try:
                principal.ensure_may_run(job)
            except Forbidden as exc:
                return from_error(exc)
        return None

    def _unauthorized(self, detail: str, *, bearer_error: bool = False) -> ProblemResponse:
        response = problem(401, "Unauthorized", detail)
        for challenge in self.challenges:
            if bearer_error and challenge.startswith(b"Bearer"):
                challenge += b', error="invalid_token"'
            response.raw_headers.append((b"www-authenticate", challenge))
        return response

    def _too_many(self, wait: float, detail: str) -> ProblemResponse:
        return problem(429, "Too many requests", detail, headers={"Retry-After": retry_after(wait)})


def _address(scope: Scope) -> str:
    """A rate-limit key for the client's address (as a proxy-headers middleware left it)."""
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def _basic(credentials: str) -> tuple[str | None, str]:
    """User and password of Basic credentials (UTF-8, RFC 7617); (None, "") if malformed."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep and user else (None, "")

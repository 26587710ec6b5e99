"""The webhook gate: a delivery to a job with ``verify`` proves its sender over the raw
body, before anything parses it (pure ASGI middleware).

A verified delivery becomes the request's principal (``webhook:<scheme>/<delivery id>``)
and its :class:`~runner.webhooks.Delivery` rides in the scope for the job endpoint; a
GitHub ping or a Slack ``ssl_check`` / ``url_verification`` is answered here and runs
nothing; anything else is a 403 problem.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.auth import Principal
from runner.errors import Refused, TooLarge
from runner.policy import Policies
from runner.secrets import Watched
from runner.web.problems import ProblemResponse, from_error, problem
from runner.web.routing import SCOPE_KEY, WEBHOOK_KEY, job_path
from runner.webhooks import BadSignature, SignatureError, StaleTimestamp, verify

log = logging.getLogger("runner.security")
DELIVERY_KEY = "runner.delivery"


class WebhookGate:
    """Verify deliveries to the jobs whose policy names a webhook scheme."""

    def __init__(
        self,
        app: ASGIApp,
        policies: Policies,
        secrets: Mapping[str, Sequence[Watched]],
        *,
        body_limit: int,
        body_timeout: float,
    ) -> None:
        self.app = app
        self.policies = policies
        self.secrets = secrets  # by policy job pattern; each read as it is now, per delivery
        self.body_limit = body_limit
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        job = job_path(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        policy = self.policies.for_job(job) if job is not None else None
        if job is None or policy is None or not policy.verify:
            await self.app(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(_read_all(receive, self.body_limit), self.body_timeout)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            # The values now: a Key Vault secret rotated since start-up is the one in use.
            secrets = [watched.current for watched in self.secrets[policy.job]]
            delivery = verify(policy.verify, secrets, headers, body, now=time.time())
        except TimeoutError:
            await problem(408, "Request timeout", "the body was not sent in time")(
                scope, receive, send
            )
            return
        except SignatureError as exc:
            # The log names the secret's source for the operator; the sender is told what
            # to compare, never where the secret lives (issue 11).
            log.warning("webhook refused for /%s: %s", job, exc)
            outcome = "stale" if isinstance(exc, StaleTimestamp) else "forged"
            scope[WEBHOOK_KEY] = (policy.verify, outcome)
            await public_refusal(exc)(scope, receive, send)
            return
        except Refused as exc:
            log.warning("webhook refused for /%s: %s", job, exc)
            scope[WEBHOOK_KEY] = (policy.verify, "refused")
            await from_error(exc)(scope, receive, send)
            return
        if not delivery.runs:
            scope[WEBHOOK_KEY] = (policy.verify, "answered")
            # GitHub's ping, Slack's ssl_check and url_verification: answered, never run.
            answer: dict[str, object] = {"ok": True, "kind": delivery.kind}
            if delivery.challenge is not None:
                answer = {"challenge": delivery.challenge}
            await JSONResponse(answer, status_code=200)(scope, receive, send)
            return
        scope[SCOPE_KEY] = Principal.webhook(delivery.scheme, delivery.delivery_id, (job,))
        scope[DELIVERY_KEY] = delivery
        await self.app(scope, _replay(body, receive), send)


def public_refusal(exc: SignatureError) -> ProblemResponse:
    """The 403 a refused sender gets: the reason, without this job's secret sources."""
    if isinstance(exc, BadSignature):
        exc = BadSignature(
            exc.scheme,
            "the signature matches none of this job's secrets: the body was changed on the "
            "way, or the sender's secret differs from the one configured for this job",
        )
    return from_error(exc)


async def _read_all(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is over the limit of {limit} bytes")
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

"""The access log and the HTTP metrics: one pure ASGI middleware, outermost.

One line per request, when its answer ends: method, path, status, bytes, duration,
principal, run id, client address. Never a secret: no header is logged, and in the query
of a job request only the values of the job's known, non-secret parameters are shown
(a secret's value, or a value under a name the job does not have — a misspelt secret —
is ``***``). A 401 to a request that carried credentials is also a failed login, logged
on ``runner.security`` with the address (and user name, for Basic).

The same pass feeds the metrics: open streams, answers by status, rate-limited requests,
failed logins and webhook deliveries by outcome.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.metrics import Metrics
from runner.web.gate import DELIVERY_KEY
from runner.web.routing import REFUSAL_KEY, SCOPE_KEY, WEBHOOK_KEY, job_path, route_path

log = logging.getLogger("runner.access")
security = logging.getLogger("runner.security")
MASK = "***"
# Query names the runner's own endpoints take: none of them is ever a secret.
_OWN = frozenset(("job", "state", "caller", "limit", "before", "follow", "last_event_id"))

# The job's non-secret parameter names, or None when the path is no job.
Shown = Callable[[str], frozenset[str] | None]


def safe_query(scope: Scope, shown: Shown) -> str:
    """The query string as it may be logged (see the module docstring)."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return ""
    job = job_path(scope)
    if job is None and route_path(scope).startswith("/_"):
        keep: frozenset[str] | None = _OWN
    else:
        keep = shown(job) if job is not None else None
    pairs = urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    out = [(k, v if keep is not None and (k in keep or k in ("_mode", "_timeout")) else MASK)
           for k, v in pairs]  # fmt: skip
    return urllib.parse.urlencode(out, safe="*/,:")


class AccessLog:
    """Logs each request once its answer is sent, and counts what metrics want."""

    def __init__(
        self, app: ASGIApp, *, shown: Shown, metrics: Metrics | None, enabled: bool = True
    ) -> None:
        self.app = app
        self.shown = shown
        self.metrics = metrics
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "bytes": 0, "run_id": None, "stream": None,
                                "replayed": False}  # fmt: skip

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._started(message, seen)
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if seen["stream"] and self.metrics is not None:
                self.metrics.stream(seen["stream"], -1)
            self._done(scope, seen, time.perf_counter() - t0)

    def _started(self, message: Message, seen: dict[str, Any]) -> None:
        seen["status"] = message["status"]
        headers = dict(message.get("headers", []))
        if b"x-run-id" in headers:
            seen["run_id"] = headers[b"x-run-id"].decode("latin-1")
        seen["replayed"] = headers.get(b"x-replayed") == b"true"
        ctype = headers.get(b"content-type", b"")
        if message["status"] == 200 and b"content-length" not in headers:
            if ctype.startswith(b"text/event-stream"):
                seen["stream"] = "sse"
            elif ctype.startswith(b"text/plain"):
                seen["stream"] = "text"
        if seen["stream"] and self.metrics is not None:
            self.metrics.stream(seen["stream"], +1)

    def _done(self, scope: Scope, seen: dict[str, Any], took: float) -> None:
        status: int = seen["status"]
        refusal = scope.get(REFUSAL_KEY) or ""
        client = scope.get("client")
        address = client[0] if client else "-"
        if self.metrics is not None:
            self._count(scope, seen, refusal)
        if refusal.startswith("failed_login"):
            who = refusal.removeprefix("failed_login ")
            security.warning("failed login (%s) from %s", who, address,
                             extra={"client": address, "event": "failed_login"})  # fmt: skip
        if not self.enabled:
            return
        principal = scope.get(SCOPE_KEY)
        caller = getattr(principal, "caller", "-")
        run_id = seen["run_id"] or _run_in_path(route_path(scope))
        query = safe_query(scope, self.shown)
        target = scope["path"] + (f"?{query}" if query else "")
        log.info(
            '%s %s "%s %s" %d %dB %.3fs%s', address, caller, scope["method"], target, status,
            seen["bytes"], took, f" run={run_id}" if run_id else "",
            extra={"method": scope["method"], "path": target, "status": status,
                   "bytes": seen["bytes"], "duration": round(took, 6), "principal": caller,
                   "run_id": run_id, "client": address},
        )  # fmt: skip

    def _count(self, scope: Scope, seen: dict[str, Any], refusal: str) -> None:
        assert self.metrics is not None
        self.metrics.answered(seen["status"])
        if refusal == "rate_limited":
            self.metrics.rate_limited.inc()
        elif refusal.startswith("failed_login"):
            self.metrics.failed_logins.inc()
        at_gate = scope.get(WEBHOOK_KEY)
        delivery = scope.get(DELIVERY_KEY)
        if at_gate is not None:
            self.metrics.webhook(*at_gate)
        elif delivery is not None:
            outcome = "refused"
            if seen["replayed"]:
                outcome = "replayed"
            elif seen["run_id"]:
                outcome = "accepted"
            self.metrics.webhook(delivery.scheme, outcome)


def _run_in_path(path: str) -> str | None:
    """The run id of ``/_runs/<id>…`` and ``/_ui/runs/<id>…`` requests."""
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "_runs":
        return parts[1]
    if len(parts) >= 3 and parts[:2] == ["_ui", "runs"]:
        return parts[2]
    return None

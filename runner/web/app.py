"""The Starlette application: routes, the refusal handler, and the runtime's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.errors import Refused, StoreError
from runner.runtime import Runtime
from runner.web import jobs, openapi, problems, runs
from runner.web.security import Security

log = logging.getLogger("runner.http")


class SecurityHeaders:
    """Pure ASGI middleware: every answer carries ``nosniff``.

    Output is only ever served as text/plain, SSE or JSON; nosniff stops a browser from
    guessing HTML out of a job's output (webhookd served output as text/html: reflected XSS).
    """

    def __init__(self, app: ASGIApp, *, hsts: bool, max_header_bytes: int = 32 * 1024) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.extra = [(b"x-content-type-options", b"nosniff")]
        if hsts:
            self.extra.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # httptools sets no bound on header size; oversized headers end here (RFC 6585).
        size = sum(len(k) + len(v) for k, v in scope["headers"])
        if size > self.max_header_bytes:
            detail = f"{size} bytes of headers; at most {self.max_header_bytes}"
            response = problems.problem(431, "Request header fields too large", detail)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    status = jobs.runs_of(request).status()
    if not status.ready:
        return JSONResponse({"ready": False, "reason": status.reason}, status_code=503)
    return JSONResponse({"ready": True, "running": status.running, "queued": status.queued})


async def catalogue(request: Request) -> Response:
    return JSONResponse({"jobs": [job.describe() for job in jobs.runs_of(request).jobs()]})


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.document(jobs.runs_of(request).jobs()))


async def on_refused(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreError):
        log.error("run store failure: %s", exc)
    if isinstance(exc, Refused | StoreError):
        return problems.from_error(exc)
    raise exc  # pragma: no cover - only registered for these types


def build_app(
    runtime: Runtime,
    security: Security | None = None,
    *,
    hsts: bool = False,
    manage_runtime: bool = True,
) -> ASGIApp:
    """The ASGI app. With ``manage_runtime`` its lifespan starts and stops the runtime."""
    settings = runtime.settings
    security = security or Security(policies=runtime.runs.policies)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.stop()

    routes = [
        Route("/_health", health, methods=["GET", "HEAD"]),
        Route("/_ready", ready, methods=["GET", "HEAD"]),
        Route("/_jobs", catalogue, methods=["GET"]),
        Route("/_openapi.json", openapi_json, methods=["GET"]),
        Route("/_runs", runs.list_runs, methods=["GET"]),
        Route("/_runs/{run_id}", runs.get_run, methods=["GET"]),
        Route("/_runs/{run_id}/log", runs.get_log, methods=["GET"]),
        Route("/_runs/{run_id}/events", runs.get_events, methods=["GET"]),
        Route("/_runs/{run_id}/cancel", runs.cancel_run, methods=["POST"]),
        Route("/{path:path}", jobs.start, methods=["POST"]),
        Route("/{path:path}", jobs.describe, methods=["GET", "HEAD"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Refused: on_refused,
            StoreError: on_refused,
            404: _not_found,
            405: _not_allowed,
        },
    )
    app.state.runs = runtime.runs
    app.state.limits = settings.limits
    app.state.heartbeat = settings.server.heartbeat
    return SecurityHeaders(
        security.wrap(app), hsts=hsts, max_header_bytes=settings.limits.max_header_bytes
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return problems.problem(404, "Not found", f"nothing at {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return problems.problem(405, "Method not allowed", f"{request.method} is not allowed here")

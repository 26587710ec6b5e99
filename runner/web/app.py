"""The Starlette application: routes, the refusal handler, and the runtime's lifespan."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.errors import Refused, StoreError
from runner.kinds import Job
from runner.metrics import Metrics
from runner.runtime import Runtime
from runner.settings import loopback_address
from runner.web import chat, jobs, openapi, problems, runs, ui
from runner.web.access import AccessLog
from runner.web.security import Security

log = logging.getLogger("runner.http")


class JobPathConvertor(PathConvertor):
    """Starlette's ``path``, but not the runner's own (``/_…``) nor ``/``: the job routes
    come first with it, so a run's request is not matched against every other route's
    pattern before its own (Starlette tries them in order)."""

    regex = "[^_].*"


register_url_convertor("job", JobPathConvertor())


class SecurityHeaders:
    """Pure ASGI middleware: every answer carries ``nosniff``.

    Output is only ever served as text/plain, SSE or JSON; nosniff stops a browser from
    guessing HTML out of a job's output (webhookd served output as text/html: reflected XSS).
    The one HTML page (web/ui) runs only its own script files: the Content-Security-Policy
    allows no inline script, no other origin, no framing.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool, max_header_bytes: int = 32 * 1024) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", CSP),
            (b"referrer-policy", b"same-origin"),
        ]
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


CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    status = jobs.runs_of(request).status()
    if not status.ready:
        return JSONResponse({"ready": False, "reason": status.reason}, status_code=503)
    return JSONResponse({"ready": True, "running": status.running, "queued": status.queued})


async def catalogue(request: Request) -> Response:
    return JSONResponse({"jobs": [job.describe() for job in jobs.runs_of(request).jobs()]})


async def metrics_text(request: Request) -> Response:
    """``GET /_metrics``: Prometheus' text format (behind the API's auth)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


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
    metrics = next((e for e in runtime.extensions.all if isinstance(e, Metrics)), None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        if metrics is not None and settings.server.metrics_listen:
            host, port = metrics.listen(*loopback_address(settings.server.metrics_listen))
            log.info("metrics on http://%s:%d/metrics (no auth: loopback only)", host, port)
        try:
            yield
        finally:
            if metrics is not None:
                metrics.stop_listening()
            if manage_runtime:
                await runtime.stop()

    routes = [
        Route("/{path:job}", jobs.start, methods=["POST"]),
        Route("/{path:job}", jobs.describe, methods=["GET", "HEAD"]),
        *(ui.routes() if settings.server.web_ui else []),
        *([Route("/_metrics", metrics_text, methods=["GET"])] if metrics is not None else []),
        Route("/_health", health, methods=["GET", "HEAD"]),
        Route("/_ready", ready, methods=["GET", "HEAD"]),
        Route("/_jobs", catalogue, methods=["GET"]),
        Route("/_openapi.json", openapi_json, methods=["GET"]),
        Route("/_runs", runs.list_runs, methods=["GET"]),
        Route("/_runs/{run_id}", runs.get_run, methods=["GET"]),
        Route("/_runs/{run_id}/log", runs.get_log, methods=["GET"]),
        Route("/_runs/{run_id}/events", runs.get_events, methods=["GET"]),
        Route("/_runs/{run_id}/notifications", runs.get_notifications, methods=["GET"]),
        Route("/_runs/{run_id}/cancel", runs.cancel_run, methods=["POST"]),
        *(chat.routes(runtime.chat, runtime.runs, settings, runtime.links) if runtime.chat else []),
        # What the first two leave (``/``): answered by the job endpoints as before.
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
    app.state.metrics = metrics
    app.state.csrf = ui.Tokens.in_state_dir(settings.server.state_dir)
    chat_paths = runtime.chat.paths if runtime.chat else ()
    guarded = ui.CrossSiteGuard(security.wrap(app, verified_paths=chat_paths),
                                security.cors_origins)  # fmt: skip
    headed = SecurityHeaders(guarded, hsts=hsts, max_header_bytes=settings.limits.max_header_bytes)
    return _QuietStartFailure(
        AccessLog(
            headed,
            shown=_shown_params(runtime),
            metrics=metrics,
            enabled=settings.server.access_log,
        ),
        runtime,
    )


class _QuietStartFailure:
    """A start the runtime refused for a reason it knows (``start_error``, in words) ends
    without the traceback Starlette hands uvicorn to log: ``runner serve`` says it."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_quietly(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.runtime.start_error:
                message = {"type": "lifespan.startup.failed", "message": ""}
            await send(message)

        await self.app(scope, receive, send_quietly)


def _shown_params(runtime: Runtime) -> Callable[[str], frozenset[str] | None]:
    """For the access log: a job's parameters whose values may be logged (not secrets)."""
    cache: weakref.WeakKeyDictionary[Job, frozenset[str]] = weakref.WeakKeyDictionary()

    def shown(path: str) -> frozenset[str] | None:
        job = runtime.runs.find(path)
        if job is None:
            return None
        if job not in cache:
            props = job.schema().get("properties", {})
            cache[job] = frozenset(
                name for name, prop in props.items()
                if not prop.get("x-secret") and not prop.get("writeOnly")
            )  # fmt: skip
        return cache[job]

    return shown


async def _not_found(request: Request, exc: Exception) -> Response:
    return problems.problem(404, "Not found", f"nothing at {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return problems.problem(405, "Method not allowed", f"{request.method} is not allowed here")

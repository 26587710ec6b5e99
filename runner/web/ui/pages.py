"""The web page's endpoints: the page itself, its static files, and its two POSTs.

    GET  /                          the page (a shell; static/app.js draws it from the API)
    GET  /_ui/static/<file>         its script modules and style sheet (no build step)
    POST /_ui/start/<job>           start a run from the page's form (X-CSRF-Token)
    POST /_ui/runs/<id>/cancel      cancel a run from the page (X-CSRF-Token)

Everything else the page reads is the API itself (``/_jobs``, ``/_runs``, the events).
Every URL the page uses is relative to where it was served, so it works unchanged behind
a proxy that mounts the runner under a sub-path (``/runner/`` → ``/``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from runner import __version__
from runner.errors import ParameterError, ParameterProblem
from runner.records import Trigger
from runner.service import StartRequest
from runner.web.intake import read_body
from runner.web.jobs import NO_STORE, runs_of
from runner.web.routing import principal_of
from runner.web.ui.csrf import HEADER, Tokens

STATIC = Path(__file__).parent / "static"
# Runs started from the page record it as their trigger's scheme.
VIA_WEB = "web"


def tokens_of(request: Request) -> Tokens:
    found: Tokens = request.app.state.csrf
    return found


async def page(request: Request) -> Response:
    """The page's shell, with this caller's CSRF token in a meta tag (no inline script)."""
    principal = principal_of(request.scope)
    token = tokens_of(request).issue(principal.caller)
    text = (STATIC / "index.html").read_text()
    text = text.replace("{{csrf}}", html.escape(token)).replace("{{version}}", __version__)
    text = text.replace("{{caller}}", html.escape(principal.caller))
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


async def start(request: Request) -> Response:
    """``{"params": {...}}`` from the page's form → 202 with the run id, or a problem."""
    principal = principal_of(request.scope)
    tokens_of(request).check(principal.caller, request.headers.get(HEADER))
    runs = runs_of(request)
    job = runs.job(request.path_params["path"])
    body = await read_body(request, request.app.state.limits.max_body_bytes)
    params = _params(job.path, body)
    address = request.client.host if request.client else None
    started = await runs.start(
        StartRequest(job.path, params, principal, trigger=Trigger(VIA_WEB, address=address))
    )
    run = started.run
    return JSONResponse(
        {"id": run.id, "job": run.job, "state": run.state},
        status_code=202,
        headers={"X-Run-Id": run.id, **NO_STORE},
    )


def _params(job: str, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = None
    params = doc.get("params") if isinstance(doc, dict) else None
    if not isinstance(params, dict):
        problem = ParameterProblem("body", 'must be {"params": {…}}')
        raise ParameterError(job, [problem])
    return params


async def cancel(request: Request) -> Response:
    principal = principal_of(request.scope)
    tokens_of(request).check(principal.caller, request.headers.get(HEADER))
    run = await runs_of(request).cancel(
        request.path_params["run_id"], principal, reason=f"cancelled from the web page by "
        f"{principal.caller}"
    )  # fmt: skip
    return JSONResponse(run.to_json(), headers=NO_STORE)


def routes() -> list[BaseRoute]:
    """The page's routes, mounted before the job routes (``/{path}``) in app.py."""
    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Mount("/_ui/static", StaticFiles(directory=STATIC), name="ui-static"),
        Route("/_ui/start/{path:path}", start, methods=["POST"]),
        Route("/_ui/runs/{run_id}/cancel", cancel, methods=["POST"]),
    ]

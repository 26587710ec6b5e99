"""The run API under ``/_runs``: history, one run, its log, its events, cancel."""

from __future__ import annotations

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from runner.auth import principal_of
from runner.errors import NotFound, ParameterError, ParameterProblem
from runner.executor import Executor
from runner.records import STATES, RunRecord
from runner.web import streams
from runner.web.jobs import NO_STORE

MAX_PAGE = 500


def _executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


async def _run(request: Request) -> RunRecord:
    """The run named in the path, if this caller may see it (else 404: no existence leak)."""
    run_id = request.path_params["run_id"]
    run = await _executor(request).record(run_id)
    if run is None or not principal_of(request.scope).may_run(run.job):
        raise NotFound(f"no run {run_id}")
    return run


async def list_runs(request: Request) -> Response:
    q = request.query_params
    problems = []
    states = [s for s in q.get("state", "").split(",") if s]
    bad = [s for s in states if s not in STATES]
    if bad:
        problems.append(ParameterProblem("state", f"unknown state(s) {', '.join(bad)}"))
    try:
        limit = int(q.get("limit", "50"))
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError
    except ValueError:
        problems.append(ParameterProblem("limit", f"must be a whole number from 1 to {MAX_PAGE}"))
        limit = 50
    if problems:
        raise ParameterError("_runs", problems)
    job = q.get("job")
    runs = await _executor(request).store.list_runs(
        job=job.strip("/") if job else None, states=states, before=q.get("before"), limit=limit
    )
    # An API token sees the runs of the jobs it may run, and only those.
    principal = principal_of(request.scope)
    body: dict[str, object] = {"runs": [r.to_json() for r in runs if principal.may_run(r.job)]}
    if len(runs) == limit:
        nxt = request.url.include_query_params(before=runs[-1].id)
        body["next"] = f"{nxt.path}?{nxt.query}"
    return JSONResponse(body, headers=NO_STORE)


async def get_run(request: Request) -> Response:
    return JSONResponse((await _run(request)).to_json(), headers=NO_STORE)


async def get_log(request: Request) -> Response | streams.TextStream:
    """The run's output as text: all of it so far, or, with ``?follow=1``, until done."""
    run = await _run(request)
    journal = _executor(request).journal
    if request.query_params.get("follow") in ("1", "true", "yes"):
        return streams.TextStream(journal, run.id, NO_STORE)
    stream = _snapshot(request, run.id)
    return StreamingResponse(stream, media_type="text/plain; charset=utf-8", headers=NO_STORE)


async def _snapshot(request: Request, run_id: str):  # type: ignore[no-untyped-def]
    store = _executor(request).store
    last = 0
    while batch := await store.events(run_id, last, 5000):
        last = batch[-1].seq
        chunk = streams.encode_text(batch)
        if chunk:
            yield chunk


async def get_events(request: Request) -> Response:
    """SSE: replay after ``Last-Event-ID`` (header, or ``?last_event_id=``), then follow."""
    run = await _run(request)
    executor = _executor(request)
    after = streams.parse_last_event_id(
        request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    )
    return EventSourceResponse(
        streams.sse_stream(executor.journal, run.id, after),
        headers=NO_STORE,
        ping=executor.settings.heartbeat,
    )


async def cancel_run(request: Request) -> Response:
    run = await _run(request)
    run = await _executor(request).cancel(run.id)
    return JSONResponse(run.to_json(), status_code=200, headers=NO_STORE)

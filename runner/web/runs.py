"""The run API under ``/_runs``: history, one run, its log, its events, cancel."""

from __future__ import annotations

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from runner.records import RunRecord
from runner.web import streams
from runner.web.jobs import NO_STORE, runs_of
from runner.web.routing import principal_of
from runner.wire import parse_last_event_id


async def _run(request: Request) -> RunRecord:
    """The run named in the path, if this caller may see it (else 404: no existence leak)."""
    return await runs_of(request).get(request.path_params["run_id"], principal_of(request.scope))


async def list_runs(request: Request) -> Response:
    q = request.query_params
    states = [s for s in q.get("state", "").split(",") if s]
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        limit = 0  # refused by the service, together with any other problem
    page = await runs_of(request).list_runs(
        principal_of(request.scope),
        job=q.get("job"),
        states=states,
        before=q.get("before"),
        limit=limit,
        caller=q.get("caller"),
    )
    body: dict[str, object] = {"runs": [r.to_json() for r in page.runs]}
    if page.next_before is not None:
        nxt = request.url.include_query_params(before=page.next_before)
        body["next"] = f"{nxt.path}?{nxt.query}"
    return JSONResponse(body, headers=NO_STORE)


async def get_run(request: Request) -> Response:
    return JSONResponse((await _run(request)).to_json(), headers=NO_STORE)


async def get_notifications(request: Request) -> Response:
    """What was told about the run, where (by channel), and how each try went."""
    notices = await runs_of(request).notices(
        request.path_params["run_id"], principal_of(request.scope)
    )
    return JSONResponse({"notifications": [n.to_json() for n in notices]}, headers=NO_STORE)


async def get_log(request: Request) -> Response | streams.TextStream:
    """The run's output as text: all of it so far, or, with ``?follow=1``, until done."""
    run = await _run(request)
    runs = runs_of(request)
    if request.query_params.get("follow") in ("1", "true", "yes"):
        idle = request.app.state.heartbeat
        return streams.TextStream(runs.follow(run.id, idle=idle), NO_STORE, idle)
    chunks = streams.text_chunks(runs.log(run.id))
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8", headers=NO_STORE)


async def get_events(request: Request) -> Response:
    """SSE: replay after ``Last-Event-ID`` (header, or ``?last_event_id=``), then follow."""
    run = await _run(request)
    after = parse_last_event_id(
        request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    )
    return EventSourceResponse(
        streams.sse_chunks(runs_of(request).follow(run.id, after)),
        headers=NO_STORE,
        ping=request.app.state.heartbeat,
    )


async def cancel_run(request: Request) -> Response:
    runs = runs_of(request)
    run = await runs.cancel(request.path_params["run_id"], principal_of(request.scope))
    return JSONResponse(run.to_json(), status_code=200, headers=NO_STORE)

"""``POST /<job>`` starts a run and answers in the chosen mode; ``GET /<job>`` describes it.

Thin: read the request (intake), call the Runs service once, render the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from runner.deliveries import Payload
from runner.errors import Ignored, NotFound, ParameterError, ParameterProblem
from runner.kinds import Job
from runner.records import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    SUCCEEDED,
    TIMED_OUT,
    VIA_HTTP,
    RunRecord,
    Trigger,
)
from runner.replays import KEY_HEADER, Key
from runner.service import Runs, StartRequest
from runner.web import intake, streams
from runner.web.gate import DELIVERY_KEY
from runner.web.intake import Mode
from runner.web.routing import WEBHOOK_KEY, job_path, principal_of
from runner.webhooks import Delivery
from runner.wire import done_body, encode_text

log = logging.getLogger("runner.http")

WAIT_BUFFER = 1 << 20  # wait mode holds at most this much output before reading it back

# Wait mode: a run that did not succeed answers non-2xx, so `curl --fail` fails a CI step.
WAIT_STATUS = {SUCCEEDED: 200, FAILED: 500, TIMED_OUT: 504, CANCELLED: 409, INTERRUPTED: 503}
NO_STORE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def runs_of(request: Request) -> Runs:
    runs: Runs = request.app.state.runs
    return runs


def lookup(request: Request) -> Job:
    """The job a request names, or 404 (see :func:`runner.web.routing.job_path`)."""
    path = job_path(request.scope)
    if path is None:
        raise NotFound("no such job")
    return runs_of(request).job(path)


async def describe(request: Request) -> Response:
    return JSONResponse(lookup(request).describe())


def run_headers(run: RunRecord) -> dict[str, str]:
    return {"X-Run-Id": run.id, "Location": f"/_runs/{run.id}", **NO_STORE}


def trigger_of(request: Request, delivery: Delivery | None) -> Trigger:
    """Where the run comes from: a verified delivery, or a plain HTTP call."""
    address = request.client.host if request.client else None
    if delivery is None:
        return Trigger(VIA_HTTP, address=address)
    return Trigger(delivery.scheme, delivery.delivery_id, delivery.event, address)


def payload_of(request: Request, delivery: Delivery | None, body: bytes) -> Payload | None:
    """What runner.toml's ``events``, ``when`` and ``params`` see of a verified delivery."""
    if delivery is None:
        return None
    return Payload(
        event=delivery.event,
        body=body,
        content_type=request.headers.get("content-type"),
        headers=dict(request.headers),
        query=dict(request.query_params),
    )


def replay_keys(
    request: Request, job: str, caller: str, delivery: Delivery | None, body: bytes
) -> tuple[Key, ...]:
    """A verified delivery's id and its signed body; else the caller's ``Idempotency-Key``
    (quoted as the draft's structured-field string, or bare as most clients send it)."""
    if delivery is not None:
        by_body = Key.delivery_body(job, delivery.scheme, body)
        if delivery.delivery_id:
            return (Key.delivery(job, delivery.scheme, delivery.delivery_id), by_body)
        return (by_body,)
    value = request.headers.get("idempotency-key")
    if value is None:
        return ()
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not 1 <= len(value) <= 255 or not value.isprintable() or not value.isascii():
        problem = ParameterProblem(KEY_HEADER, "must be 1 to 255 printable ASCII characters")
        raise ParameterError(job, [problem])
    return (Key.idempotency(caller, value),)


async def start(request: Request) -> Response | streams.TextStream:
    runs = runs_of(request)
    job = lookup(request)
    delivery: Delivery | None = request.scope.get(DELIVERY_KEY)
    # A delivery's body gives parameters where its kind reads them so, and runner.toml
    # maps none (a mapping gives them then).
    from_body = delivery is None or (
        job.delivery_body_is_params and not runs.maps_deliveries(job.path)
    )
    got = await intake.parse(request, job, request.app.state.limits, body_params=from_body)
    exposed = sorted(got.in_query & job.secret_names)
    if exposed:
        # Proxies and access logs keep URLs: a secret belongs in the body. Its value
        # never reaches this line, only its name.
        log.warning(
            "/%s: secret parameter(s) %s came in the URL; send them in a form or JSON body",
            job.path, ", ".join(exposed), extra={"job": job.path},
        )  # fmt: skip
    mode = intake.choose_mode(request, got.controls)
    principal = principal_of(request.scope)
    try:
        started = await runs.start(
            StartRequest(
                job.path,
                got.params,
                principal,
                body=got.body,
                timeout=got.controls.get("_timeout"),
                trigger=trigger_of(request, delivery),
                replay=replay_keys(request, job.path, principal.caller, delivery, got.body),
                # Text mode shows the run id only with its first stored event; the rest
                # wait for the record to be stored before answering.
                durable=mode.name != "text",
                payload=payload_of(request, delivery, got.body),
            )
        )
    except Ignored as exc:
        if delivery is None:  # pragma: no cover - only a delivery's filters ignore one
            raise
        return _ignored(request, delivery, exc)
    run = started.run
    if started.replayed:
        return _replayed(run, mode.name)
    headers = run_headers(run)
    if mode.name == "async":
        headers["Preference-Applied"] = "respond-async"
        return JSONResponse(_accepted(run), status_code=202, headers=headers)
    if mode.name == "sse":
        return EventSourceResponse(
            streams.sse_chunks(runs.follow(run.id)),
            headers=headers,
            ping=request.app.state.heartbeat,
        )
    if mode.name == "wait":
        return await _wait(runs, run, mode, request.app.state.limits.max_wait, headers)
    idle = request.app.state.heartbeat
    return streams.TextStream(runs.follow(run.id, idle=idle), headers, idle)


def _accepted(run: RunRecord) -> dict[str, Any]:
    return {"id": run.id, "job": run.job, "state": run.state, "links": run.links()}


async def _wait(
    runs: Runs, run: RunRecord, mode: Mode, ceiling: float, headers: dict[str, str]
) -> Response:
    """Wait mode: the whole output once the run ends, with a status that says how it
    ended; or, past ``wait=N`` seconds (at most the server's ceiling), 202 + Location."""
    limit = min(mode.wait or ceiling, ceiling)
    chunks: list[bytes] | None = []  # None once the output outgrew the buffer
    size = 0
    done: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(limit):
            async for batch in runs.follow(run.id):
                if chunks is not None:
                    chunk = encode_text(batch)
                    size += len(chunk)
                    if size <= WAIT_BUFFER:
                        chunks.append(chunk)
                    else:
                        # A long output is not held in memory: it is read back from the
                        # store once the run has ended and its status is known.
                        chunks = None
                done = done_body(batch) or done
    except TimeoutError:
        log.info(
            "%s still running after %g s: 202 to its caller",
            run.id,
            limit,
            extra={"run_id": run.id, "event": "wait_expired"},
        )
        headers["Preference-Applied"] = f"respond-async, wait={limit:g}"
        record = await runs.get(run.id)
        return JSONResponse(_accepted(record), status_code=202, headers=headers)
    state = done["state"] if done else INTERRUPTED
    headers["Preference-Applied"] = "wait" if mode.wait is None else f"wait={mode.wait:g}"
    headers["X-Run-State"] = state
    status = WAIT_STATUS.get(state, 500)
    if chunks is None:
        return StreamingResponse(
            streams.text_chunks(runs.log(run.id)),
            status_code=status,
            headers=headers,
            media_type="text/plain; charset=utf-8",
        )
    return PlainTextResponse(b"".join(chunks).decode(), status_code=status, headers=headers)


# Slack and Teams show a 200's body in the channel (Slack a ``text``, Teams a message
# activity), and take any other status for a failure; the other senders want a 2xx.
_IGNORED_STATUS = {"slack": 200, "teams": 200}


def _ignored(request: Request, delivery: Delivery, exc: Ignored) -> Response:
    """A delivery the job's filters rule out: started nothing, and says why — a success
    to its sender, which must not retry it."""
    log.info(
        "/%s: delivery %s (%s) ignored: %s", exc.job, delivery.delivery_id or "-",
        delivery.scheme, exc.reason,
        extra={"job": exc.job, "event": "delivery_ignored", "scheme": delivery.scheme},
    )  # fmt: skip
    request.scope[WEBHOOK_KEY] = (delivery.scheme, "ignored")
    body: dict[str, Any] = {"ignored": True, "reason": exc.reason, "text": str(exc)}
    if delivery.scheme == "teams":
        body["type"] = "message"
    status = _IGNORED_STATUS.get(delivery.scheme, 202)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _replayed(record: RunRecord, mode: str) -> Response:
    """The answer to a replayed delivery: its original run, in the asked mode's shape."""
    headers = run_headers(record) | {"X-Replayed": "true"}
    body = {"id": record.id, "job": record.job, "state": record.state, "replayed": True,
            "links": record.links()}  # fmt: skip
    return JSONResponse(body, status_code=200 if mode != "async" else 202, headers=headers)


__all__ = ["describe", "start"]

"""``POST /<job>`` starts a run and answers in the chosen mode; ``GET /<job>`` describes it."""

from __future__ import annotations

from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from runner.auth import Principal, principal_of
from runner.catalogue import Job
from runner.errors import Forbidden, NotFound
from runner.executor import Executor
from runner.policy import policy_for
from runner.records import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    SUCCEEDED,
    TIMED_OUT,
    RunRecord,
    new_run_id,
)
from runner.web import intake, streams
from runner.web.security import DELIVERY_KEY, Security
from runner.webhooks import Delivery

# Wait mode: a run that did not succeed answers non-2xx, so `curl --fail` fails a CI step.
WAIT_STATUS = {SUCCEEDED: 200, FAILED: 500, TIMED_OUT: 504, CANCELLED: 409, INTERRUPTED: 503}
NO_STORE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def lookup(request: Request) -> Job:
    """The job a request names, or 404.

    The path must be spelled plainly: any percent-escape, backslash or NUL in the raw
    path is refused before the lookup, and the lookup itself is a dictionary key, so no
    spelling of ``..`` can reach a file outside the catalogue.
    """
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    raw = raw.split(b"?", 1)[0]
    if b"%" in raw or b"\\" in raw or b"\x00" in raw or not raw.startswith(b"/"):
        raise NotFound("no such job")
    executor: Executor = request.app.state.executor
    job = executor.catalogue.get(raw[1:].decode("ascii", "replace"))
    if job is None:
        raise NotFound(f"no job at {raw.decode('ascii', 'replace')}; GET /_jobs lists them")
    return job


async def describe(request: Request) -> Response:
    job = lookup(request)
    return JSONResponse(job.describe())


def run_headers(run: RunRecord) -> dict[str, str]:
    return {"X-Run-Id": run.id, "Location": f"/_runs/{run.id}", **NO_STORE}


async def start(request: Request) -> Response | streams.TextStream:
    executor: Executor = request.app.state.executor
    job = lookup(request)
    settings = executor.settings
    got = await intake.parse(
        request, job, settings.max_body_bytes, settings.max_params, settings.body_timeout
    )
    mode = intake.choose_mode(request, got.controls)
    principal = principal_of(request.scope)
    security: Security = request.app.state.security
    policy = policy_for(security.policies, job.path)
    if policy is not None and not policy.allows(principal.kind, principal.name):
        raise Forbidden(f"{principal.caller} may not run /{job.path} (runner.toml allows: "
                        f"{', '.join(policy.allow)})")  # fmt: skip
    sub = executor.prepare(job, got.params, body=got.body, timeout=got.controls.get("_timeout"))
    delivery: Delivery | None = request.scope.get(DELIVERY_KEY)
    run_id = new_run_id()
    if delivery is not None and delivery.delivery_id:
        original = await _delivered_before(
            executor, security, job.path, delivery.scheme, delivery.delivery_id, run_id
        )
        if original is not None:
            return await _replayed(executor, original, mode)
    try:
        # Text mode shows the run id only with its first stored event; the rest wait for
        # the record to be stored before answering.
        run = await executor.submit(
            sub, caller=principal.caller, durable=mode != "text", run_id=run_id
        )
    except Exception:
        if delivery is not None and delivery.delivery_id:
            await security.replays.release(job.path, delivery.scheme, delivery.delivery_id)
        raise
    headers = run_headers(run)
    journal = executor.journal
    if mode == "async":
        body = {"id": run.id, "job": run.job, "state": run.state, "links": run.links()}
        headers["Preference-Applied"] = "respond-async"
        return JSONResponse(body, status_code=202, headers=headers)
    if mode == "sse":
        return EventSourceResponse(
            streams.sse_stream(journal, run.id),
            headers=headers,
            ping=settings.heartbeat,
        )
    if mode == "wait":
        chunks: list[bytes] = []
        done: dict[str, Any] | None = None
        async for batch in journal.follow(run.id):
            chunks.append(streams.encode_text(batch))
            done = streams.done_body(batch) or done
        state = done["state"] if done else INTERRUPTED
        headers["Preference-Applied"] = "wait"
        headers["X-Run-State"] = state
        return PlainTextResponse(
            b"".join(chunks).decode(), status_code=WAIT_STATUS.get(state, 500), headers=headers
        )
    return streams.TextStream(journal, run.id, headers)


async def _delivered_before(
    executor: Executor, security: Security, job: str, scheme: str, delivery_id: str, run_id: str
) -> str | None:
    """The run an earlier copy of this delivery started, or None (then it is claimed).

    The store remembers across restarts (a run records its delivery as its caller); the
    in-memory guard covers two copies arriving at once.
    """
    caller = Principal.webhook(scheme, delivery_id, (job,)).caller
    earlier = await executor.store.find_run(job, caller)
    if earlier is not None:
        return earlier.id
    return await security.replays.claim(job, scheme, delivery_id, run_id)


async def _replayed(executor: Executor, run_id: str, mode: str) -> Response:
    """The answer to a replayed delivery: its original run, in the asked mode's shape."""
    record = await executor.record(run_id)
    if record is None:
        raise NotFound(f"the original run {run_id} of this delivery is gone")
    headers = run_headers(record) | {"X-Replayed": "true"}
    body = {"id": record.id, "job": record.job, "state": record.state, "replayed": True,
            "links": record.links()}  # fmt: skip
    return JSONResponse(body, status_code=200 if mode != "async" else 202, headers=headers)


def catalogue_json(executor: Executor) -> dict[str, Any]:
    return {"jobs": [job.describe() for job in executor.catalogue]}


__all__ = ["catalogue_json", "describe", "start"]

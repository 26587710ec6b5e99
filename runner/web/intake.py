"""Reading a job request: body under a size limit, parameters, control options, mode."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from runner.bodies import media_type
from runner.errors import BadRequest, ParameterError, ParameterProblem, TooLarge, TooSlow
from runner.kinds import Job
from runner.settings import LimitSettings

MODES = ("sse", "text", "async", "wait")
# Control options ride in the query string with a leading underscore, apart from parameters.
CONTROLS = ("_mode", "_timeout")


@dataclass(frozen=True)
class Intake:
    params: dict[str, Any]
    controls: dict[str, str]
    body: bytes
    in_query: frozenset[str] = frozenset()  # parameters given in the URL


async def read_body(request: Request, limit: int, within: float = 30.0) -> bytes:
    """The whole body, refusing (413) past ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size > limit:
            raise TooLarge(f"the body is {size} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        # A client trickling its body (slowloris) is cut off, not waited for.
        async with asyncio.timeout(within):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the body is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise TooSlow(f"the body did not arrive within {within:g} s") from None
    return b"".join(chunks)


async def parse(
    request: Request, job: Job, limits: LimitSettings, *, body_params: bool = True
) -> Intake:
    """Parameters from the query string, then those the job's kind reads out of the body
    (:meth:`~runner.kinds.Job.body_params`; none when ``body_params`` is False: a delivery
    mapped by runner.toml gives its parameters through the mapping).

    A name given twice is an error rather than a silent choice.
    """
    body = await read_body(request, limits.max_body_bytes, limits.body_timeout)
    problems: list[ParameterProblem] = []
    params: dict[str, Any] = {}
    controls: dict[str, str] = {}

    def put(name: str, value: Any) -> None:
        if name.startswith("_"):
            if name not in CONTROLS:
                problems.append(
                    ParameterProblem(name, f"unknown option; options are {', '.join(CONTROLS)}")
                )
            elif name in controls:
                problems.append(ParameterProblem(name, "given more than once"))
            else:
                controls[name] = str(value)
        elif name in params:
            problems.append(ParameterProblem(name, "given more than once"))
        else:
            params[name] = value

    for name, value in request.query_params.multi_items():
        put(name, value)
    in_query = frozenset(params)
    if body and body_params:
        ctype = media_type(request.headers.get("content-type"))
        for name, value in job.body_params(body, ctype, limits):
            put(name, value)
    mode = controls.get("_mode")
    if mode is not None and mode not in MODES:
        problems.append(ParameterProblem("_mode", f"must be one of {', '.join(MODES)}"))
    if problems:
        raise ParameterError(job.path, problems)
    return Intake(params, controls, body, in_query)


@dataclass(frozen=True)
class Mode:
    """How to answer: ``name`` (sse, text, async, wait) and, for wait, how long at most."""

    name: str
    wait: float | None = None  # seconds: then 202 + Location if the run has not ended


def preferences(request: Request) -> dict[str, str]:
    """``Prefer`` header preferences (RFC 7240): name → value ("" without one)."""
    found: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for part in header.split(","):
            token = part.split(";")[0].strip().lower()
            name, _, value = token.partition("=")
            if name:
                found.setdefault(name.strip(), value.strip().strip('"'))
    return found


def choose_mode(request: Request, controls: dict[str, str]) -> Mode:
    """``_mode`` wins; then ``Prefer`` (respond-async, wait=N); then Accept; text by default.

    RFC 7240: ``wait=N`` bounds how long the answer may take; with ``respond-async`` or
    alone, the server waits up to N seconds for the run to end and then answers 202.
    """
    prefer = preferences(request)
    wait = _seconds(prefer.get("wait"))
    if "_mode" in controls:
        return Mode(controls["_mode"], wait)
    if "respond-async" in prefer:
        return Mode("wait", wait) if wait else Mode("async")
    if "wait" in prefer:
        return Mode("wait", wait)
    if "text/event-stream" in request.headers.get("accept", ""):
        return Mode("sse")
    return Mode("text")


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None  # a preference the server cannot read is ignored (RFC 7240 §2)
    return seconds if seconds is not None and 0 < seconds < float("inf") else None

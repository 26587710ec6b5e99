"""Reading a job request: body under a size limit, parameters, control options, mode."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from runner.errors import (
    BadRequest,
    ParameterError,
    ParameterProblem,
    TooLarge,
    TooSlow,
    UnsupportedMediaType,
)
from runner.kinds import Job
from runner.settings import LimitSettings

MODES = ("sse", "text", "async", "wait")
# Control options ride in the query string with a leading underscore, apart from parameters.
CONTROLS = ("_mode", "_timeout")
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Intake:
    params: dict[str, Any]
    controls: dict[str, str]
    body: bytes


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


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


async def parse(request: Request, job: Job, limits: LimitSettings) -> Intake:
    """Parameters from the query string, then a form or JSON object body.

    A name given twice is an error rather than a silent choice. A script job's JSON body
    is its ``$1`` (webhook payloads are nested documents), not parameters.
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
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # A script's body is its $1 whatever its type (webhookd: `curl -d payload`); only a
    # job whose kind says so reads parameters out of a body.
    if body and job.body_is_params:
        if ctype == "application/x-www-form-urlencoded":
            try:
                pairs = urllib.parse.parse_qsl(
                    body.decode("utf-8"), keep_blank_values=True, max_num_fields=limits.max_params
                )
            except (UnicodeDecodeError, ValueError) as exc:
                raise ParameterError(job.path, [ParameterProblem("body", str(exc))]) from None
            for name, value in pairs:
                put(name, value)
        elif ctype == "" or ctype.endswith("json"):
            for name, value in _json_object(job, body).items():
                put(name, value)
        else:
            raise UnsupportedMediaType(
                f"a Python job takes a JSON object or a form body, not {ctype}"
            )
    mode = controls.get("_mode")
    if mode is not None and mode not in MODES:
        problems.append(ParameterProblem("_mode", f"must be one of {', '.join(MODES)}"))
    if problems:
        raise ParameterError(job.path, problems)
    return Intake(params, controls, body)


def _json_object(job: Job, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ParameterError(job.path, [ParameterProblem("body", "not valid JSON")]) from None
    if not isinstance(doc, dict):
        raise ParameterError(job.path, [ParameterProblem("body", "must be a JSON object")])
    if _depth(doc) > MAX_JSON_DEPTH:
        raise ParameterError(job.path, [ParameterProblem("body", "JSON nested too deeply")])
    return doc


def choose_mode(request: Request, controls: dict[str, str]) -> str:
    """``_mode`` wins; then ``Prefer`` (respond-async, wait); then Accept; text by default."""
    if "_mode" in controls:
        return controls["_mode"]
    prefer = request.headers.get("prefer", "").lower()
    tokens = {t.split("=")[0].strip() for part in prefer.split(",") for t in part.split(";")}
    if "respond-async" in tokens:
        return "async"
    if "wait" in tokens:
        return "wait"
    if "text/event-stream" in request.headers.get("accept", ""):
        return "sse"
    return "text"

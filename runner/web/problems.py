"""Refusals as ``application/problem+json`` (RFC 9457): the one table from the runner's
domain errors to HTTP statuses. No module outside ``runner.web`` knows a status code."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

from runner.errors import (
    BadRequest,
    Busy,
    Conflict,
    Draining,
    Forbidden,
    NotFound,
    ParameterError,
    Refused,
    StoreError,
    TooLarge,
    TooSlow,
    Unavailable,
    UnsupportedMediaType,
)
from runner.webhooks import SignatureError

PROBLEM = "application/problem+json"

# Most specific first: a class is answered by the first entry it is an instance of.
STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (ParameterError, 422, "Invalid parameters"),
    # 403 rather than 401: a webhook sender cannot answer a WWW-Authenticate challenge
    # (RFC 9110 §15.5.2); it reached us but did not prove it holds the job's secret.
    (SignatureError, 403, "Webhook delivery refused"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (TooSlow, 408, "Request timeout"),
    (TooLarge, 413, "Payload too large"),
    (UnsupportedMediaType, 415, "Unsupported media type"),
    (Busy, 429, "Too many runs"),
    (Draining, 503, "Service unavailable"),
    (Unavailable, 503, "Service unavailable"),
    (BadRequest, 400, "Bad request"),
    (Refused, 400, "Bad request"),
    (StoreError, 503, "Run store unavailable"),
)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return ProblemResponse(body, status_code=status, headers=headers)


def status_of(exc: Exception) -> tuple[int, str]:
    """The status and title a refusal is answered with."""
    for kind, status, title in STATUS:
        if isinstance(exc, kind):
            return status, title
    return 500, "Internal server error"  # pragma: no cover - only mapped errors get here


def from_error(exc: Refused | StoreError) -> ProblemResponse:
    status, title = status_of(exc)
    if isinstance(exc, ParameterError):
        # /_runs?state=bogus is a bad query of the history, not a job that did not run.
        said = "in the query of" if exc.job.startswith("_") else "for"
        ran = "" if exc.job.startswith("_") else "; nothing was run"
        return problem(
            status,
            title,
            f"{len(exc.problems)} parameter problem(s) {said} /{exc.job}{ran}",
            errors=[{"name": p.name, "reason": p.reason} for p in exc.problems],
        )
    if isinstance(exc, StoreError):
        # The store heals or is replaced; a retry soon may well succeed.
        return problem(status, title, str(exc), headers={"Retry-After": "5"})
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return problem(status, title, exc.detail, headers=headers, **exc.fields)

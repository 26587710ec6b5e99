"""Errors before a run starts, as ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from runner.errors import ParameterError, RequestError

PROBLEM = "application/problem+json"


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


def from_error(exc: RequestError | ParameterError) -> ProblemResponse:
    if isinstance(exc, ParameterError):
        return problem(
            422,
            "Invalid parameters",
            f"{len(exc.problems)} parameter problem(s) for /{exc.job}; nothing was run",
            errors=[{"name": p.name, "reason": p.reason} for p in exc.problems],
        )
    return problem(exc.status, exc.title, exc.detail, headers=exc.headers)

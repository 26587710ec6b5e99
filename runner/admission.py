"""Admission: everything about a request is checked before a run exists.

Types, patterns and ranges (the job's ParamSpec), rules across parameters (its ``check``),
limits on count and size, control characters, names a script's environment would honour,
the body size of a script, the timeout asked for, the lock key. Every problem is reported
at once, in one :class:`ParameterError` (a 422 over HTTP).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner import scripts
from runner.catalogue import Job
from runner.errors import ParameterError, ParameterProblem
from runner.params import REDACTED, Limits, check_raw
from runner.settings import Settings

SECRET_ENV = frozenset(("IDENTITY_HEADER", "MSI_SECRET"))


@dataclass
class Submission:
    """A validated request for a run: nothing here is unchecked."""

    job: Job
    values: dict[str, Any]  # validated values (Python) or strings (script)
    recorded: dict[str, Any]  # the same with secrets redacted
    secrets: list[str]  # values to mask out of the run's output
    timeout: float
    lock_key: str | None
    body: bytes = b""
    had_secrets: bool = False  # a secret *parameter* was given (it is never stored)


def prepare(
    job: Job,
    raw: Mapping[str, Any],
    settings: Settings,
    limits: Limits,
    script_env: Mapping[str, str],
    *,
    body: bytes = b"",
    timeout: Any = None,
) -> Submission:
    """Validate everything about a request; raise ParameterError listing each problem."""
    problems = check_raw(job.path, raw, limits)
    limit = min(job.timeout or settings.default_timeout, settings.max_timeout)
    run_timeout = limit
    if timeout is not None:
        try:
            asked = float(timeout)
            if not math.isfinite(asked) or asked <= 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(ParameterProblem("_timeout", "must be a positive number of seconds"))
        else:
            if asked > limit:
                problems.append(
                    ParameterProblem("_timeout", f"at most {limit:g} seconds for this job")
                )
            run_timeout = asked
    if job.kind == "script" and b"\x00" in body:
        # $1 is a C string: a NUL cannot be passed, and would cut the body short.
        problems.append(ParameterProblem("body", "a script's body cannot contain a NUL byte"))
    if job.kind == "script" and len(body) > settings.max_script_body_bytes:
        problems.append(
            ParameterProblem(
                "body",
                f"a script's body is at most {settings.max_script_body_bytes} bytes",
            )
        )
    values: dict[str, Any]
    secrets: list[str] = []
    if job.spec is not None:
        if problems:
            raise ParameterError(job.path, problems)
        try:
            values = job.spec.validate(raw)
        except ParameterError as exc:
            raise ParameterError(job.path, problems + exc.problems) from None
        if job.check is not None:
            # Rules across parameters (exactly one of pw/ssh_key…): still a 422.
            found = job.check(dict(values)) or {}
            if found:
                raise ParameterError(job.path, [ParameterProblem(n, r) for n, r in found.items()])
        recorded = job.spec.redact(values)
        secrets = job.spec.secret_values(values)
    else:
        problems += scripts.check_names(list(raw), script_env)
        if problems:
            raise ParameterError(job.path, problems)
        values = {k: str(v) for k, v in raw.items()}
        recorded = {k: REDACTED if k in job.script_secrets else v for k, v in values.items()}
        secrets = [v for k, v in values.items() if k in job.script_secrets and v]
    lock_key = None
    if job.lock:
        try:
            lock_key = job.lock.format(**{f: values.get(f) for f in job.lock_fields})
        except (KeyError, ValueError, IndexError) as exc:
            raise ParameterError(
                job.path, [ParameterProblem("*", f"cannot build lock key: {exc}")]
            ) from None
    # Credentials the platform hands a script (App Service's identity header…) are masked
    # in its output like its own secrets; they are not parameters, so they do not stop a
    # queued run from resuming after a restart.
    masked = secrets + [v for k, v in script_env.items() if k in SECRET_ENV and v]
    if job.kind != "script":
        masked = secrets
    return Submission(
        job, values, recorded, masked, run_timeout, lock_key, body, had_secrets=bool(secrets)
    )

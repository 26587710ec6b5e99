"""Admission: everything about a request is checked before a run exists.

Limits on count and size, control characters and names (any job); the timeout asked for;
then the job's own checks (its kind: types, patterns, ranges, rules across parameters for
Python jobs; reserved names and the body for scripts); then the lock key. Every problem is
reported at once, in one :class:`ParameterError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.errors import ParameterError, ParameterProblem
from runner.kinds import Job, Submission
from runner.params import Limits, check_raw
from runner.settings import LimitSettings


@dataclass(frozen=True)
class Rules:
    """What admission checks against: the limits, and the environment scripts start from
    (a parameter may not shadow it)."""

    limits: LimitSettings
    script_env: Mapping[str, str]
    param_limits: Limits = field(init=False)

    def __post_init__(self) -> None:
        limits = Limits(self.limits.max_params, self.limits.max_param_bytes)
        object.__setattr__(self, "param_limits", limits)


def prepare(
    job: Job,
    raw: Mapping[str, Any],
    rules: Rules,
    *,
    body: bytes = b"",
    timeout: Any = None,
) -> Submission:
    """Validate everything about a request; raise ParameterError listing each problem."""
    problems = check_raw(job.path, raw, rules.param_limits)
    run_timeout, problem = _timeout(job, rules.limits, timeout)
    if problem is not None:
        problems.append(problem)
    admitted = job.admit(raw, body, rules.limits, rules.script_env, problems)
    lock_key = None
    if job.lock:
        try:
            lock_key = job.lock.format(**{f: admitted.values.get(f) for f in job.lock_fields})
        except (KeyError, ValueError, IndexError) as exc:
            raise ParameterError(
                job.path, [ParameterProblem("*", f"cannot build lock key: {exc}")]
            ) from None
    return Submission(
        job,
        admitted.values,
        admitted.recorded,
        admitted.secrets,
        run_timeout,
        lock_key,
        body,
        had_secrets=bool(admitted.secrets) or admitted.stored_body is None,
        stored_body=admitted.stored_body or b"",
    )


def _timeout(job: Job, limits: LimitSettings, asked: Any) -> tuple[float, ParameterProblem | None]:
    """The run's timeout: the job's (or the default) under the ceiling, or less if asked."""
    limit = min(job.timeout or limits.default_timeout, limits.max_timeout)
    if asked is None:
        return limit, None
    try:
        seconds = float(asked)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError
    except (TypeError, ValueError):
        return limit, ParameterProblem("_timeout", "must be a positive number of seconds")
    if seconds > limit:
        return limit, ParameterProblem("_timeout", f"at most {limit:g} seconds for this job")
    return seconds, None

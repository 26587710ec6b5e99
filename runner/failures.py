"""A job that raised, in words: the lines its run shows, its reason and exit code.

A ``JobError`` is the job's own words (which may hold a secret, and several lines); a
failure an extension knows (no identity here, a missing Azure role) is explained in words
a person can act on; anything else is a traceback, since only it says where. Every line
goes through the run's masker.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from runner.errors import JobError, RunnerError
from runner.output import split_lines


@dataclass(frozen=True)
class Failure:
    exit_code: int
    reason: str  # one line, for the record and the result line
    lines: list[str]  # the run's error lines
    unexpected: bool  # not said on purpose by the job: worth a line in the server log


def describe(
    exc: Exception,
    mask: Callable[[str], str],
    explain: Callable[[BaseException], str | None],
) -> Failure:
    """What a run shows of ``exc``, masked."""
    if isinstance(exc, JobError):
        lines = split_lines(mask(str(exc)))
        return Failure(exc.exit_code, lines[0], lines, unexpected=False)
    explained = str(exc) if isinstance(exc, RunnerError) else explain(exc)
    if explained is not None:
        lines = [mask(line) for line in explained.splitlines()] or [mask(type(exc).__name__)]
        return Failure(1, lines[0], lines, unexpected=True)
    lines = [
        mask(part)
        for line in traceback.format_exception(exc)
        for part in line.rstrip("\n").split("\n")
    ]
    return Failure(1, mask(f"{type(exc).__name__}: {exc}"), lines, unexpected=True)

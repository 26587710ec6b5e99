"""The one error tree of runner.

Every error a user can meet derives from :class:`RunnerError` and carries a message that
says what to do about it. These are domain errors: none knows a status code. The HTTP edge
maps each kind to its answer in one table (``runner/web/problems.py``); the command line
prints the message and exits 2::

    RunnerError
    ├── ConfigError          bad settings, flags, runner.toml or environment
    │   ├── HtpasswdError, TokenStoreError   (runner.auth: unusable credential files)
    │   └── InsecureBindError                (runner.auth: open server beyond loopback)
    ├── CatalogueError       job folders that break the naming rules or collide
    ├── JobLoadError         a job module that cannot be imported or described
    ├── Refused              a request refused before any run exists
    │   ├── BadRequest       malformed (a Content-Length that is no number…)
    │   ├── ParameterError   bad parameters for a job, one entry per parameter
    │   ├── Forbidden        the caller may not do this
    │   │   └── SignatureError (runner.webhooks: MissingHeader, MalformedHeader,
    │   │                       BadSignature, StaleTimestamp)
    │   ├── NotFound         no such job or run (or not one this caller may see)
    │   ├── Conflict         the run's state forbids it (cancel of an ended run)
    │   ├── TooLarge         a body over its limit
    │   ├── TooSlow          a body not sent in time
    │   ├── UnsupportedMediaType  a body of a type the job cannot read
    │   ├── Busy             the queue is full: retry after ``retry_after`` seconds
    │   ├── Draining         shutting down: retry elsewhere or after ``retry_after``
    │   └── Unavailable      something the run needs cannot be had now (a job's secret
    │                        default in Key Vault): retry after ``retry_after``
    ├── Ignored              a webhook delivery the job's filters do not take: nothing
    │                        started, and the sender is told why (not a refusal)
    ├── StoreError           the run store failed
    ├── ClientError          the remote client (``runner call``, ``--server``) got no answer
    │   ├── Unreachable      no answer from the server after every try
    │   └── ServerRefused    the server refused the request: its problem, in words
    └── JobError             raised by a job to fail its run with a clean message
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RunnerError(Exception):
    """Base of every error the runner raises on purpose."""


class ConfigError(RunnerError):
    """Settings that cannot be used; the message names the setting and its source."""


class CatalogueError(RunnerError):
    """Job folders that cannot be served: the message names every offending file."""


class JobLoadError(RunnerError):
    """A job file that cannot be loaded or described."""


class Refused(RunnerError):
    """A request refused before any run exists.

    ``detail`` says why in words; ``retry_after`` (seconds) is set when trying again later
    can succeed; ``fields`` are facts a client may act on (shown as they are).
    """

    def __init__(self, detail: str, *, retry_after: float | None = None, **fields: Any) -> None:
        self.detail = detail
        self.retry_after = retry_after
        self.fields = fields
        super().__init__(detail)


class BadRequest(Refused):
    """A request that is malformed in a way no parameter explains."""


@dataclass(frozen=True)
class ParameterProblem:
    """One bad parameter: its name and why it was refused."""

    name: str
    reason: str


class ParameterError(Refused):
    """Bad parameters for a job; lists every problem at once, not the first one."""

    def __init__(self, job: str, problems: list[ParameterProblem]) -> None:
        self.job = job
        self.problems = problems
        listed = "; ".join(f"{p.name}: {p.reason}" for p in problems)
        super().__init__(f"invalid parameters for {job}: {listed}")


class Forbidden(Refused):
    """The caller is known but may not do this."""


class NotFound(Refused):
    """No such job or run, or none this caller may see (which is not told apart)."""


class Conflict(Refused):
    """The run's state forbids the request."""


class TooLarge(Refused):
    """A body over its limit."""


class TooSlow(Refused):
    """A body that did not arrive in time."""


class UnsupportedMediaType(Refused):
    """A body of a type the job cannot take."""


class Busy(Refused):
    """Too many runs are waiting; ``retry_after`` says when to try again."""


class Draining(Refused):
    """The runner is shutting down and takes no new runs."""


class Unavailable(Refused):
    """Something the run needs cannot be had now; the server's log says why."""


class Ignored(RunnerError):
    """A verified delivery that runner.toml's ``events`` or ``when`` rule out for ``job``.

    Not a refusal: the sender did nothing wrong and must not retry, so it is answered as
    a success that started nothing; ``reason`` says which filter it missed and how.
    """

    def __init__(self, job: str, reason: str) -> None:
        self.job = job
        self.reason = reason
        super().__init__(f"ignored: {reason}")


class StoreError(RunnerError):
    """The run store failed (disk full, corrupt file, lost database)."""


class ClientError(RunnerError):
    """The remote client could not do what was asked."""


class Unreachable(ClientError):
    """No answer from the server after every try (the last failure says why)."""


class ServerRefused(ClientError):
    """The server answered with a refusal (4xx): ``status`` and its problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        lines = [f"{problem.get('title', 'refused')} ({status}): {problem.get('detail', '')}"]
        lines += [f"  {e.get('name')}: {e.get('reason')}" for e in problem.get("errors", [])]
        super().__init__("\n".join(lines))


class JobError(RunnerError):
    """Raised by a job to fail its run; the message is shown to the caller as is.

    ``exit_code`` becomes the run's exit code (default 1).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        self.exit_code = exit_code
        super().__init__(message)

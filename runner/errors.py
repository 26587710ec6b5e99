"""The one error tree of runner.

Every error a user can meet derives from :class:`RunnerError` and carries a message that
says what to do about it::

    RunnerError
    ├── ConfigError          bad settings, flags, runner.toml or environment
    │   ├── HtpasswdError, TokenStoreError   (runner.auth: unusable credential files)
    │   └── InsecureBindError                (runner.auth: open server beyond loopback)
    ├── CatalogueError       job folders that break the naming rules or collide
    ├── JobLoadError         a job module that cannot be imported or described
    ├── ParameterError       bad parameters for a job (422), one entry per parameter
    ├── RequestError         a request the runner refuses before any run exists
    │   ├── Forbidden        (403)
    │   ├── SignatureError   (403, runner.webhooks: MissingHeader, MalformedHeader,
    │   │                     BadSignature, StaleTimestamp)
    │   ├── NotFound         (404)
    │   ├── RequestTimeout   (408)
    │   ├── PayloadTooLarge  (413)
    │   ├── UnsupportedMediaType (415)
    │   ├── Conflict         (409)
    │   ├── Unavailable      (503, e.g. while draining)
    │   └── QueueFull        (429, with a Retry-After)
    ├── StoreError           the run store failed
    └── JobError             raised by a job to fail its run with a clean message
"""

from __future__ import annotations

from dataclasses import dataclass


class RunnerError(Exception):
    """Base of every error the runner raises on purpose."""


class ConfigError(RunnerError):
    """Settings that cannot be used; the message names the setting and its source."""


class CatalogueError(RunnerError):
    """Job folders that cannot be served: the message names every offending file."""


class JobLoadError(RunnerError):
    """A job file that cannot be loaded or described."""


@dataclass(frozen=True)
class ParameterProblem:
    """One bad parameter: its name and why it was refused."""

    name: str
    reason: str


class ParameterError(RunnerError):
    """Bad parameters for a job; lists every problem at once, not the first one."""

    def __init__(self, job: str, problems: list[ParameterProblem]) -> None:
        self.job = job
        self.problems = problems
        listed = "; ".join(f"{p.name}: {p.reason}" for p in problems)
        super().__init__(f"invalid parameters for {job}: {listed}")


class RequestError(RunnerError):
    """A request refused before any run exists. ``status`` is the HTTP status."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail
        self.headers = headers or {}
        super().__init__(detail)


class Forbidden(RequestError):
    status = 403
    title = "Forbidden"


class NotFound(RequestError):
    status = 404
    title = "Not found"


class PayloadTooLarge(RequestError):
    status = 413
    title = "Payload too large"


class RequestTimeout(RequestError):
    status = 408
    title = "Request timeout"


class UnsupportedMediaType(RequestError):
    status = 415
    title = "Unsupported media type"


class Conflict(RequestError):
    status = 409
    title = "Conflict"


class Unavailable(RequestError):
    status = 503
    title = "Service unavailable"


class QueueFull(RequestError):
    status = 429
    title = "Too many runs"


class StoreError(RunnerError):
    """The run store failed (disk full, corrupt file, lost database)."""


class JobError(RunnerError):
    """Raised by a job to fail its run; the message is shown to the caller as is.

    ``exit_code`` becomes the run's exit code (default 1).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        self.exit_code = exit_code
        super().__init__(message)

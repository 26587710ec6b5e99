"""What every kind of job is: one protocol, so a new kind is one new class.

    Job                      a path, a file, a description, a timeout, a lock template
    ├── PythonJob (python.py)  ``async def run(ctx, …)``: typed parameters, ``check``
    └── ScriptJob (script.py)  an executable, webhookd style: env parameters, body as $1

A kind says which files it claims and how it loads them (:meth:`Job.name_of`,
:meth:`Job.load`), what parameters it takes (:meth:`Job.schema`), how a request's
parameters become validated values (:meth:`Job.admit`), and how a run of it executes
(:meth:`Job.invoke`). Nothing outside the kinds asks which kind a job is.
"""

from __future__ import annotations

import re
import string
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from runner.context import Lender, SecretReader
from runner.errors import ParameterProblem
from runner.kinds.spawner import Spawner
from runner.records import RunRecord
from runner.settings import LimitSettings

# Where a run's events go: ``sink(kind, data)``, the journal bound to one run.
Sink = Callable[[str, str], None]


@dataclass(frozen=True)
class Host:
    """What the engine lends a run while it executes."""

    resources: Lender  # what extensions lend Python jobs by name (``ctx.azure()``)
    # The environment scripts start from: minimal, plus what extensions add (identity).
    script_env: Mapping[str, str]
    # Values no run may show: credentials the platform hands this process and its scripts
    # (App Service's identity header…). Not parameters, so a queued run can still resume.
    masked: tuple[str, ...]
    kill_grace: float
    # Returns once the run's output waiting to be stored is small (``await ctx.print``).
    drained: Callable[[], Awaitable[None]]
    spawner: Spawner  # starts scripts off the loop, in shepherd processes
    # Reads secret sources for ``ctx.secret("keyvault:…")`` (the runtime's SecretSources).
    secrets: SecretReader | None = None


@dataclass(frozen=True)
class Admitted:
    """A kind's verdict on a request's parameters: all of them checked."""

    values: dict[str, Any]  # what the job gets (Python values; strings for scripts)
    recorded: dict[str, Any]  # the same with secrets redacted: what may be stored or shown
    secrets: list[str]  # the secret parameter values given
    # The body as the run must keep it to run again after a restart (a script's $1);
    # None when it is a secret and may not be stored.
    stored_body: bytes | None = b""


@dataclass
class Submission:
    """A validated request for a run: nothing here is unchecked."""

    job: Job
    values: dict[str, Any]
    recorded: dict[str, Any]
    secrets: list[str]  # values to mask out of the run's output and records
    timeout: float
    lock_key: str | None
    body: bytes = b""
    had_secrets: bool = False  # a secret was given (it is never stored): no resuming
    stored_body: bytes = b""  # what of the body the record keeps


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``64M``, ``512K``, ``2G`` or plain bytes; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 64M)")
    return int(m[1]) * _UNITS[m[2].upper()]


def lock_fields(template: str) -> tuple[str, ...]:
    """The parameter names a lock template such as ``rg:{rg}`` uses."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


@dataclass(frozen=True, eq=False)
class Job(ABC):
    """One job: its URL path, file, description and run-time declarations."""

    kind: ClassVar[str]
    # Whether a verified webhook delivery's body gives parameters as a call's body does.
    # A Python job's always has; a script's is a payload, kept for $1 (runner.toml
    # ``params`` maps what the script needs), so that a sender's reply URL or token
    # (Slack's form has both) never becomes a parameter, which is recorded and shown.
    delivery_body_is_params: ClassVar[bool]

    path: str
    file: Path
    description: str
    timeout: float | None
    lock: str | None
    output_limit: int | None  # bytes of output a run may write; None: the server's default

    @property
    def lock_fields(self) -> tuple[str, ...]:
        return lock_fields(self.lock) if self.lock else ()

    @classmethod
    @abstractmethod
    def name_of(cls, file: Path) -> str | None:
        """The job name ``file`` serves if this kind claims it (else None)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str, file: Path) -> Job:
        """Load ``file`` as the job at ``path``; JobLoadError says why it cannot be."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """JSON Schema of the parameters; secrets carry ``writeOnly`` and ``x-secret``."""

    @property
    @abstractmethod
    def secret_names(self) -> frozenset[str]:
        """The parameters that are secrets (never recorded, logged or shown)."""

    @property
    def secret_sources(self) -> Mapping[str, str]:
        """Secret parameters whose default is a source (``keyvault:…``), by name: the
        runner reads them for a request that does not give them."""
        return {}

    @abstractmethod
    def body_schema(self) -> dict[str, Any]:
        """OpenAPI ``requestBody`` of ``POST /<job>``."""

    @abstractmethod
    def body_params(self, body: bytes, ctype: str, limits: LimitSettings) -> list[tuple[str, Any]]:
        """The parameters a request body of media type ``ctype`` gives, in order (a name
        may repeat: the caller refuses that); ParameterError or UnsupportedMediaType for a
        body this kind cannot read."""

    @abstractmethod
    def admit(
        self,
        raw: Mapping[str, Any],
        body: bytes,
        limits: LimitSettings,
        script_env: Mapping[str, str],
        problems: list[ParameterProblem],
    ) -> Admitted:
        """Validate ``raw`` (and ``body``) on top of the ``problems`` found already; raise
        ParameterError listing all of them, or return the checked values."""

    @abstractmethod
    async def invoke(
        self,
        sub: Submission,
        run: RunRecord,
        sink: Sink,
        mask: Callable[[str], str],
        host: Host,
    ) -> int:
        """Execute one run; return its exit code (exceptions fail it)."""

    def describe(self) -> dict[str, Any]:
        """What ``GET /<job>`` and ``GET /_jobs`` show."""
        return {
            "path": "/" + self.path,
            "kind": self.kind,
            "description": self.description,
            "timeout": self.timeout,
            "lock": self.lock,
            "output_limit": self.output_limit,
            "parameters": self.schema(),
        }

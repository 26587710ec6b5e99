"""``ctx``: what a Python job gets from the runner.

Output lines, progress, cancellation, and the process-wide services (the Azure credential
and clients hang here: :attr:`Context.azure`). Secret values are masked out of every line
before it is recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from runner.errors import ConfigError
from runner.records import EV_ERROR, EV_OUTPUT, EV_STATUS

if TYPE_CHECKING:
    from runner.azure.services import Azure

MAX_LINE = 64 * 1024  # longer lines are split: one event stays a bounded size


class Services(Protocol):
    """Process-wide resources offered to jobs (credential, ARM clients, …).

    Built once and shared by every run, so tokens are cached and reused.
    """

    async def for_run(self, ctx: Context) -> Any:
        """The resources for one run (``await ctx.azure()``)."""
        ...

    def explain(self, exc: BaseException) -> str | None:
        """A sentence a person can act on for a known failure, or None."""
        ...

    def script_env(self) -> dict[str, str]:
        """Variables script jobs need to use the same services (identity endpoints)."""
        ...

    async def close(self) -> None: ...


class Sink(Protocol):
    """Where a run's events go (the executor's journal, bound to one run)."""

    def __call__(self, kind: str, data: str) -> None: ...


def masker(secrets: list[str]) -> Callable[[str], str]:
    """A function replacing each secret value in a line with ``***``."""
    # Very short values would mask ordinary text everywhere; they are no secret anyway.
    values = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
    if not values:
        return lambda line: line

    def mask(line: str) -> str:
        for value in values:
            if value in line:
                line = line.replace(value, "***")
        return line

    return mask


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` without terminators; over-long lines cut into MAX_LINE pieces."""
    out = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        while len(line) > MAX_LINE:
            out.append(line[:MAX_LINE])
            line = line[MAX_LINE:]
        out.append(line)
    return out


class Context:
    """Handed to ``run(ctx, …)``. One per run."""

    def __init__(
        self,
        *,
        run_id: str,
        job: str,
        params: Mapping[str, Any],
        sink: Sink,
        secrets: list[str],
        services: Services | None,
        timeout: float,
    ) -> None:
        self.run_id = run_id
        self.job = job
        #: The run's parameters as recorded (secrets redacted).
        self.params = dict(params)
        self.timeout = timeout
        self._sink = sink
        self._mask = masker(secrets)
        self._services = services
        self.cancelled = asyncio.Event()

    def print(self, *parts: object, sep: str = " ") -> None:
        """Write output lines (stdout). Several lines at once are split."""
        for line in split_lines(sep.join(str(p) for p in parts)):
            self._sink(EV_OUTPUT, self._mask(line))

    def error(self, *parts: object, sep: str = " ") -> None:
        """Write error lines (stderr)."""
        for line in split_lines(sep.join(str(p) for p in parts)):
            self._sink(EV_ERROR, self._mask(line))

    def progress(self, message: str, percent: float | None = None) -> None:
        """Report progress: a ``status`` event; text mode shows it as a ``runner:`` line."""
        body: dict[str, Any] = {"progress": self._mask(message)}
        if percent is not None:
            body["percent"] = max(0.0, min(100.0, float(percent)))
        self._sink(EV_STATUS, json.dumps(body))

    async def azure(self) -> Azure:
        """The shared Azure credential, ready ARM clients, subscription and location."""
        if self._services is None:
            raise ConfigError("this runner has no Azure services (see README: Identity)")
        azure: Azure = await self._services.for_run(self)
        return azure

"""What the outbox asks of a composer, and what a try of a notice tells it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from runner.records import Event, Notice, RunRecord

Moment = Literal["started", "progress", "finished"]

# Statuses a receiver answers when trying again later can help; any other 4xx says the
# message itself is refused (a bad URL, a revoked hook): tried again, it would fail again.
TRANSIENT = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class Sent:
    """How one try went: ``error`` None when delivered; ``final`` when no later try can
    succeed (the notice is given up at once, saying why)."""

    status: int | None
    error: str | None = None
    final: bool = False

    @classmethod
    def of(cls, response: httpx.Response, what: str) -> Sent:
        """The usual reading of an HTTP answer: 2xx delivered, 4xx final but a few."""
        code = response.status_code
        if 200 <= code < 300:
            return cls(code)
        final = 400 <= code < 500 and code not in TRANSIENT
        return cls(code, f"{what} answered HTTP {code}", final=final)


class Composer(Protocol):
    """Makes the notices of one kind of receiver, and sends them.

    ``channels`` are the ``Notice.channel`` values it sends. ``compose`` is called once
    a moment of a run is committed (``tail``: the run's last output lines, when
    ``wants_tail``), and again at start-up for finished runs (ids make that idempotent).
    """

    channels: tuple[str, ...]
    wants_tail: bool

    def compose(self, run: RunRecord, moment: Moment, tail: Sequence[str]) -> list[Notice]: ...

    def progress(self, run: RunRecord, event: Event) -> list[Notice]: ...

    async def send(self, http: httpx.AsyncClient, notice: Notice) -> Sent: ...


@dataclass
class Links:
    """Where people open a run: ``public_url``, else the address the server listens on
    (set once it is bound)."""

    base: str = ""

    def run(self, run_id: str) -> str:
        return f"{self.base.rstrip('/')}/_runs/{run_id}"

    def page(self, run_id: str) -> str:
        """The web page's view of a run."""
        return f"{self.base.rstrip('/')}/#/run/{run_id}"


def notice_id(run_id: str, moment: str, target: str) -> str:
    """Stable per run, moment and target: the same message made twice is one message."""
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return f"msg_{run_id}_{moment}_{digest}"

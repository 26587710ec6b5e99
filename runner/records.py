"""Values that describe runs and their events: what the store keeps and the API shows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

# Run states, in DESIGN's order. FINAL states never change again.
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
INTERRUPTED = "interrupted"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, INTERRUPTED)
FINAL = frozenset((SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, INTERRUPTED))

# Event kinds: the SSE ``event:`` names.
EV_RUN = "run"
EV_OUTPUT = "output"
EV_ERROR = "error"
EV_STATUS = "status"
EV_DONE = "done"
EVENT_KINDS = (EV_RUN, EV_OUTPUT, EV_ERROR, EV_STATUS, EV_DONE)

# Exit codes for runs that did not end by themselves, as timeout(1) and shells report them.
EXIT_TIMED_OUT = 124
EXIT_CANCELLED = 130


def new_run_id() -> str:
    """A sortable unique id: ULIDs order by creation time and are URL-safe."""
    return str(ULID())


@dataclass(slots=True)
class RunRecord:
    """One run. Mutable while the run lives; the store keeps snapshots of it."""

    id: str
    job: str
    state: str
    params: dict[str, Any]  # secrets already redacted
    caller: str
    created: float
    timeout: float
    lock_key: str | None = None
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    reason: str | None = None  # why it ended as it did, in words
    last_event: int = 0
    # Set when a secret was given: a queued run then cannot be resumed after a restart.
    had_secrets: bool = False
    # The process running (or queueing) it: see runner.owner.
    owner: str = ""
    # ``params`` as JSON, made once by the store (they never change after creation).
    params_json: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else None
        return None if end is None else round(end - self.started, 6)

    def links(self) -> dict[str, str]:
        base = f"/_runs/{self.id}"
        return {
            "self": base,
            "log": base + "/log",
            "events": base + "/events",
            "cancel": base + "/cancel",
            "job": "/" + self.job,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "state": self.state,
            "params": self.params,
            "caller": self.caller,
            "lock_key": self.lock_key,
            "timeout": self.timeout,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "events": self.last_event,
            "links": self.links(),
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a run's append-only log. ``seq`` is 1, 2, 3… per run: the SSE id."""

    run_id: str
    seq: int
    kind: str
    data: str  # a line for output/error; JSON text for the others
    ts: float = field(default=0.0)

    def json(self) -> Any:
        return json.loads(self.data)

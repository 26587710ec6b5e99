"""Values that describe runs and their events: what the store keeps and the API shows."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# The status event of a run that starts; lifecycle hooks know "started" by it.
RUNNING_STATUS = json.dumps({"state": RUNNING})

# Exit codes for runs that did not end by themselves, as timeout(1) and shells report them.
EXIT_TIMED_OUT = 124
EXIT_CANCELLED = 130

# Trigger schemes for runs no webhook started (webhook schemes are runner.webhooks.SCHEMES).
VIA_HTTP = "http"
VIA_CLI = "cli"


@dataclass(frozen=True, slots=True)
class Trigger:
    """Where a run came from, so that a hook can answer back there.

    ``scheme``: ``http``, ``cli`` or a webhook scheme (``github``, ``slack``…);
    ``delivery_id`` and ``event`` are the sender's (``X-GitHub-Delivery``,
    ``X-GitHub-Event``); ``address`` is the client's address as the server believed it.
    ``fields``: the parameters runner.toml's ``params`` mapped from the delivery, as
    recorded (a secret parameter's value redacted).
    ``reply`` holds what a sender gave to answer it (Slack's ``response_url``): kept for
    hooks, never shown, since whoever holds it can post to the channel. Never a secret:
    the trigger is built from what a verified request says about itself, never from a
    credential or a signature.
    """

    scheme: str = VIA_HTTP
    delivery_id: str | None = None
    event: str | None = None
    address: str | None = None
    reply: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What the API shows: everything but ``reply``."""
        return {
            "scheme": self.scheme,
            "delivery_id": self.delivery_id,
            "event": self.event,
            "address": self.address,
            "fields": dict(self.fields),
        }

    def stored(self) -> str:
        """JSON for the store: everything, ``reply`` included."""
        return json.dumps({**self.to_json(), "reply": dict(self.reply)})

    @classmethod
    def loaded(cls, text: str | None) -> Trigger:
        """Back from :meth:`stored` (runs stored before triggers existed: ``http``)."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            scheme=data.get("scheme") or VIA_HTTP,
            delivery_id=data.get("delivery_id"),
            event=data.get("event"),
            address=data.get("address"),
            reply=data.get("reply") or {},
            fields=data.get("fields") or {},
        )


def new_run_id() -> str:
    """A sortable unique id: ULIDs order by creation time and are URL-safe."""
    return str(_ulid()())


@functools.cache
def _ulid() -> type[ULID]:
    # Imported on first use: the command line's client never makes a run id.
    from ulid import ULID

    return ULID


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
    # The executor holding it (queued or running): a lease, see runner.lease.
    owner: str = ""
    trigger: Trigger = field(default_factory=Trigger)
    # A script's body ($1), kept to run again after a restart; never shown.
    body: bytes = b""
    # ``params`` and ``trigger`` as JSON, made once by the store (they never change after
    # creation, and a run is written at every batch that holds its events).
    params_json: str = ""
    trigger_json: str = ""

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
            # The same instants for people (issue 11): ISO 8601, UTC.
            "created_at": _iso(self.created),
            "started_at": _iso(self.started),
            "finished_at": _iso(self.finished),
            "duration": self.duration,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "trigger": self.trigger.to_json(),
            "events": self.last_event,
            "links": self.links(),
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    stamp = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


@dataclass(frozen=True, slots=True)
class Claim:
    """A request key taken by a run: a webhook delivery id or an ``Idempotency-Key``.

    ``fingerprint`` digests the request that took it (job, recorded parameters, body), so
    a key reused for another request is told apart; ``owner`` is the lease of the executor
    that was starting the run (a claim whose run never got stored, by a holder now gone,
    may be taken over).
    """

    key: str
    run_id: str
    fingerprint: str
    owner: str
    created: float


MAX_TRIES_KEPT = 20  # a notice retried for a day keeps its latest tries, not all


@dataclass(slots=True)
class Notice:
    """One message to deliver about a run, kept in the store's outbox until delivered.

    ``id`` is stable per run, event and target (a Standard Webhooks ``webhook-id``: a
    receiver that sees it twice knows it is one message). ``channel`` says how to send it:
    ``webhook`` (signed with the notification secret), ``slack`` or ``teams`` (to the
    reply address a chat gave). ``target`` may be a capability URL (Slack's response_url):
    stored, never shown.
    """

    id: str
    run_id: str
    channel: str
    target: str
    body: str  # JSON
    created: float
    deadline: float  # given up after this
    next_at: float = 0.0
    attempts: int = 0
    delivered: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    tries: str = "[]"  # JSON: the latest MAX_TRIES_KEPT tries, {"at", "status", "error"}

    @property
    def gave_up(self) -> bool:
        return self.delivered is None and self.next_at > self.deadline

    def tried(self, at: float, status: int | None, error: str | None) -> str:
        """``tries`` with one more, the oldest dropped past :data:`MAX_TRIES_KEPT`."""
        kept = json.loads(self.tries)[-(MAX_TRIES_KEPT - 1) :]
        return json.dumps([*kept, {"at": at, "status": status, "error": error}])

    def to_json(self) -> dict[str, Any]:
        """What ``GET /_runs/<id>/notifications`` shows (not the target: it may be secret)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "gave_up": self.gave_up,
            "tries": json.loads(self.tries),
        }

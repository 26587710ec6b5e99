"""Start a run and follow it to its end, whatever happens to the connection.

    POST /<job> (Accept: text/event-stream, Idempotency-Key) ──► events … ✂ drop
        └─ no answer at all? POST again with the same key: the server answers with the
           run the first POST started, if it did (one run, never two)
    GET /_runs/<id>/events (Last-Event-ID: n) ──► events n+1 … ✂ … ──► done

Every event has its number; one already printed is never printed again, and the stream
resumes after the last one printed, so the output is each line once, in order.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
from httpx_sse import EventSource, SSEError

from runner.client.connection import RETRY_STATUS, Connection, Retry
from runner.errors import Unreachable
from runner.records import EV_DONE, EV_ERROR, EV_OUTPUT, EV_RUN, Event
from runner.wire import escape_controls, result_line, text_line

# A start's own retry: 409 is a copy of this request still being started.
START_RETRY = RETRY_STATUS | {409}


@dataclass
class Printer:
    """Events to the terminal: output lines to stdout; errors, progress and the result
    line to stderr (as ``runner run`` prints them). Control characters are escaped when
    the stream is a terminal."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    server: str = ""
    # A failure a job explained arrives as its last error line and as the done reason:
    # said once.
    last_error: str | None = None

    def __call__(self, event: Event) -> None:
        if event.kind in (EV_OUTPUT, EV_ERROR):
            # Escaped for a terminal (escape sequences could rewrite it); kept as they are
            # for a pipe or a CI log.
            stream = self.out if event.kind == EV_OUTPUT else self.err
            stream.write((escape_controls(event.data) if stream.isatty() else event.data) + "\n")
            stream.flush()
            if event.kind == EV_ERROR:
                self.last_error = event.data
            return
        if event.kind == EV_RUN:
            run = event.json()
            line = f"runner: run={run['id']} job={run['job']} {self.server}/_runs/{run['id']}"
        elif event.kind == EV_DONE and event.json().get("reason") == self.last_error:
            line = result_line(event.run_id, event.json())
        else:
            line = text_line(event) or ""
        if line:
            self.err.write(line + "\n")
            self.err.flush()


@dataclass(frozen=True)
class Start:
    """What ``POST /<job>`` is asked."""

    job: str
    params: Mapping[str, str]
    key: str  # Idempotency-Key: retries of this start are the same request
    body: bytes = b""
    content_type: str | None = None
    timeout: float | None = None


@dataclass
class Followed:
    """How far a run has been followed."""

    run_id: str = ""
    last: int = 0
    done: dict[str, Any] | None = None

    def finished(self) -> bool:
        return self.done is not None


def start_and_follow(
    conn: Connection, start: Start, show: Callable[[Event], None], followed: Followed
) -> dict[str, Any]:
    """Start the run, print its events through every drop, return its ``done`` body.

    ``followed`` is filled as it goes, so that an interrupted caller knows the run.
    """
    headers = {"Idempotency-Key": start.key, "Accept": "text/event-stream"}
    if start.content_type:
        headers["Content-Type"] = start.content_type
    params = dict(start.params)
    if start.timeout is not None:
        params["_timeout"] = f"{start.timeout:g}"

    def post() -> None:
        try:
            with conn.stream(
                "POST", "/" + start.job, START_RETRY,
                params=params, content=start.body, headers=headers,
            ) as response:  # fmt: skip
                _read(response, show, followed)
        except (httpx.TransportError, SSEError):
            if not followed.run_id:
                raise  # no answer yet: the POST is sent again, with the same key
            # The run exists: it is followed from where the stream broke.

    try:
        conn.retrying(f"POST /{start.job}", post)
    except Unreachable:
        if not followed.run_id:
            raise
    if not followed.finished():
        follow(conn, show, followed)
    return followed.done or {}


def follow(conn: Connection, show: Callable[[Event], None], followed: Followed) -> None:
    """Follow ``followed.run_id`` from ``followed.last`` until its ``done`` event."""
    failures = 0
    while not followed.finished():
        before = followed.last
        try:
            with conn.stream(
                "GET", f"/_runs/{followed.run_id}/events",
                headers={"Last-Event-ID": str(followed.last), "Accept": "text/event-stream"},
            ) as response:  # fmt: skip
                _read(response, show, followed)
        except (httpx.TransportError, SSEError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        except Retry as again:
            why = again.why
        else:
            why = "the stream ended before the run did"
        if followed.finished():
            return
        # A stream that brought events and broke is resumed at once; only tries that
        # bring nothing back off.
        failures = 0 if followed.last > before else failures + 1
        if failures >= conn.backoff.tries:
            raise Unreachable(
                f"lost run {followed.run_id} after event {followed.last}: "
                f"{conn.backoff.tries} tries failed ({why})"
            )
        if failures:
            time.sleep(conn.backoff.delay(failures - 1))


def _read(response: httpx.Response, show: Callable[[Event], None], followed: Followed) -> None:
    """Events of one answer: an SSE stream, or the JSON of a replayed start."""
    run_id = response.headers.get("x-run-id") or followed.run_id
    if "text/event-stream" not in response.headers.get("content-type", ""):
        # A start answered with an earlier copy's run (X-Replayed): follow that one.
        response.read()
        body = response.json()
        followed.run_id = body["id"]
        return
    followed.run_id = run_id
    for sse in EventSource(response).iter_sse():
        seq = int(sse.id) if sse.id and sse.id.isdigit() else 0
        if seq <= followed.last:
            continue  # already printed (never twice)
        event = Event(followed.run_id, seq, sse.event, sse.data)
        show(event)
        followed.last = seq
        if event.kind == EV_DONE:
            followed.done = json.loads(event.data)
            return

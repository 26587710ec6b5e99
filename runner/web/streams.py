"""Encoding a run's events for the wire: plain text lines or server-sent events.

Both encoders take batches of events and return one chunk per batch, so a 100,000-line
replay is a few hundred writes, not 100,000.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from runner.journal import Journal
from runner.records import EV_DONE, EV_ERROR, EV_OUTPUT, EV_STATUS, Event


def result_line(run_id: str, done: dict[str, Any]) -> str:
    """The fixed, parseable last line of a text stream."""
    code = done.get("exit_code")
    duration = done.get("duration") or 0.0
    return (
        f"runner: run={run_id} state={done['state']} "
        f"exit={'-' if code is None else code} duration={duration:.3f}s"
    )


def text_line(event: Event) -> str | None:
    """One event as a text-mode line; None for events text mode does not show."""
    if event.kind in (EV_OUTPUT, EV_ERROR):
        return event.data
    if event.kind == EV_STATUS:
        body = event.json()
        message = body.get("progress") or body.get("message")
        if message:
            pct = body.get("percent")
            return f"runner: {message}" + (f" ({pct:.0f}%)" if pct is not None else "")
        return None
    if event.kind == EV_DONE:
        body = event.json()
        line = result_line(event.run_id, body)
        if body.get("reason") and body["state"] != "succeeded":
            return f"runner: {body['reason']}\n{line}"
        return line
    return None


def encode_text(batch: list[Event]) -> bytes:
    lines = [line for e in batch if (line := text_line(e)) is not None]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def encode_sse(batch: list[Event]) -> bytes:
    """SSE frames: ``id``, ``event`` and ``data`` per event.

    A line may hold a bare CR (progress bars); SSE treats CR as a line end, so it is
    split into several ``data:`` fields, which clients join with LF.
    """
    parts = []
    for e in batch:
        data = e.data
        if "\r" in data:
            data = data.replace("\r", "\ndata: ")
        parts.append(f"id: {e.seq}\nevent: {e.kind}\ndata: {data}\n\n")
    return "".join(parts).encode()


class TextStream:
    """ASGI response: a run's text, written batch by batch as the batches commit.

    Leaner than StreamingResponse on the hot path (one short run per request): no task
    group, and the batch holding ``done`` goes out with the end of the body in one write.
    A disconnect is watched for only once the run outlives its first batch; a caller that
    leaves ends this stream, never the run.
    """

    def __init__(
        self, journal: Journal, run_id: str, headers: dict[str, str], after: int = 0
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.after = after
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.headers.append((b"content-type", b"text/plain; charset=utf-8"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The headers (with X-Run-Id) go out with the first committed batch: the run may
        # have been submitted without waiting for its record to be stored.
        started = False
        watcher: asyncio.Task[Message] | None = None
        try:
            async for batch in self.journal.follow(self.run_id, self.after):
                if not started:
                    start = {"type": "http.response.start", "status": 200, "headers": self.headers}
                    await send(start)
                    started = True
                chunk = encode_text(batch)
                if batch[-1].kind == EV_DONE:
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    return
                if watcher is None:
                    watcher = asyncio.ensure_future(receive())
                elif watcher.done() and watcher.result()["type"] == "http.disconnect":
                    return
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not started:  # pragma: no cover - follow always yields the `run` event
                await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()


async def sse_stream(journal: Journal, run_id: str, after: int = 0) -> AsyncIterator[bytes]:
    async for batch in journal.follow(run_id, after):
        yield encode_sse(batch)


def parse_last_event_id(value: str | None) -> int:
    """``Last-Event-ID`` as a sequence number; anything unusable replays from the start."""
    if not value:
        return 0
    try:
        n = int(value.strip())
    except ValueError:
        return 0
    return max(n, 0)


def done_body(events: list[Event]) -> dict[str, Any] | None:
    for e in reversed(events):
        if e.kind == EV_DONE:
            body: dict[str, Any] = json.loads(e.data)
            return body
    return None

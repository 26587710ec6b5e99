"""How a run's events look outside: plain text lines or server-sent events.

Shared by every way out — the HTTP streams, ``runner run`` in a terminal, the remote
client — so that a text line means the same wherever it is read. The encoders take
batches of events and return one chunk per batch, so a 100,000-line replay is a few
hundred writes, not 100,000.
"""

from __future__ import annotations

import json
import re
from typing import Any

from runner.records import EV_DONE, EV_ERROR, EV_OUTPUT, EV_STATUS, Event

# Text mode's keepalive: written after each ``heartbeat`` seconds without output, so that
# proxies keep the connection. Part of the text format; clients skip it (it never appears
# in a run's stored log).
KEEPALIVE = "runner: … still running, no output for {seconds:g} s\n"


def is_keepalive(line: str) -> bool:
    """True for a keepalive line of the text format (with or without its newline)."""
    return line.startswith("runner: … still running, no output for ")


def result_line(run_id: str, done: dict[str, Any]) -> str:
    """The fixed, parseable last line of a text stream."""
    code = done.get("exit_code")
    duration = done.get("duration") or 0.0
    return (
        f"runner: run={run_id} state={done['state']} "
        f"exit={'-' if code is None else code} duration={duration:.3f}s"
    )


# C0 controls but TAB and CR, DEL and C1: in a terminal, escape sequences can move the
# cursor, rewrite a title or hide what came before; text for terminals shows them escaped.
# CR stays: progress bars redraw their line with it, and it can only redraw that line.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def escape_controls(line: str) -> str:
    """``line`` with control characters shown as ``\\xNN`` (TAB and CR kept)."""
    if not _CONTROLS.search(line):
        return line
    return _CONTROLS.sub(lambda m: f"\\x{ord(m[0]):02x}", line)


def text_line(event: Event) -> str | None:
    """One event as a text-mode line; None for events text mode does not show. A job's
    output comes with its control characters escaped (terminals read the text format)."""
    if event.kind in (EV_OUTPUT, EV_ERROR):
        return escape_controls(event.data)
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

    Every line end in the data (CR, LF or both: progress bars, a job's multi-line words)
    starts a new ``data:`` field, which clients join with LF: no text of a job can end
    its event early and forge another (an ``id:``, a ``done``) after it.
    """
    parts = []
    for e in batch:
        data = e.data
        if "\r" in data or "\n" in data:
            data = _LINE_ENDS.sub("\ndata: ", data)
        parts.append(f"id: {e.seq}\nevent: {e.kind}\ndata: {data}\n\n")
    return "".join(parts).encode()


_LINE_ENDS = re.compile(r"\r\n|\r|\n")


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
    """The body of the ``done`` event among ``events``, if there is one."""
    for e in reversed(events):
        if e.kind == EV_DONE:
            body: dict[str, Any] = json.loads(e.data)
            return body
    return None

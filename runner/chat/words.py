"""What chat messages say, before a platform dresses it (Slack mrkdwn, a Teams card)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from runner.kinds import Job
from runner.records import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    RunRecord,
)

MARK = {
    SUCCEEDED: "✅",
    FAILED: "❌",
    TIMED_OUT: "⏱️",
    CANCELLED: "🚫",
    INTERRUPTED: "⚠️",
    RUNNING: "⏳",
    QUEUED: "⏳",
}
TAIL_LINES = 10
TAIL_CHARS = 2500  # Slack's section text holds 3000; the block wraps it
MAX_LISTED = 40


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def job_lines(jobs: Iterable[Job], how: str) -> list[str]:
    """The general help: each job one may run and what it does; ``how`` starts one."""
    listed = sorted(jobs, key=lambda j: j.path)
    if not listed:
        return ["No job here is open to you from chat: ask the runner's operator."]
    lines = [f"Jobs you may run (`{how} JOB name=value …`, `{how} JOB --help`):"]
    for job in listed[:MAX_LISTED]:
        about = first_line(job.description)
        lines.append(f"• `{job.path}`" + (f" — {about}" if about else ""))
    if len(listed) > MAX_LISTED:
        lines.append(f"… and {len(listed) - MAX_LISTED} more (GET /_jobs lists them all)")
    return lines


def job_help(job: Job, how: str) -> list[str]:
    """A job's help: what it does and each parameter (type, default, allowed values)."""
    schema = job.schema()
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    example = " ".join(f"{n}=…" for n in props if n in required and n not in job.secret_names)
    lines = [f"`{how} {job.path}{' ' + example if example else ''}`"]
    if job.description.strip():
        lines.append(job.description.strip())
    if not props:
        more = "any name=value" if schema.get("additionalProperties") else "no parameters"
        lines.append(f"Parameters: {more}.")
    for name, prop in props.items():
        lines.append("• " + _param(name, prop, name in required, name in job.secret_names))
    return lines


def _param(name: str, prop: dict[str, Any], required: bool, secret: bool) -> str:
    kind = prop.get("type", "string")
    notes = ["required" if required else f"default {prop.get('default')!r}"]
    if "enum" in prop:
        notes.append("one of " + ", ".join(map(str, prop["enum"])))
    if "pattern" in prop:
        notes.append(f"matching `{prop['pattern']}`")
    for key, word in (("minimum", "≥"), ("maximum", "≤")):
        if key in prop:
            notes.append(f"{word} {prop[key]}")
    if secret:
        notes.append("secret: not from chat")
    about = f" — {prop['description']}" if prop.get("description") else ""
    return f"`{name}` ({kind}; {', '.join(notes)}){about}"


def title(run: RunRecord) -> str:
    """``✅ /vm/create succeeded in 12.3 s (exit 0)``, or where it stands."""
    mark = MARK.get(run.state, "•")
    if run.state in (QUEUED, RUNNING):
        return f"{mark} /{run.job} is {run.state}"
    took = f" in {_duration(run.duration)}" if run.duration is not None else ""
    code = f" (exit {run.exit_code})" if run.exit_code is not None else ""
    return f"{mark} /{run.job} {run.state.replace('_', ' ')}{took}{code}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def tail(lines: Sequence[str]) -> str:
    """The last lines of output for a code block: at most TAIL_LINES, TAIL_CHARS."""
    kept = list(lines[-TAIL_LINES:])
    text = "\n".join(kept)
    if len(text) > TAIL_CHARS:
        text = "…" + text[-TAIL_CHARS:]
    # A fence inside the output would end the block early.
    return text.replace("```", "ˋˋˋ")

"""Who is asking: the principal of a request, and which jobs it may run.

Job patterns match a job path segment by segment, fnmatch-style within a segment (``*``,
``?``, ``[abc]``), and ``**`` matches any number of segments (at the end, one or more):
``deploy/*`` is every job directly under deploy, ``deploy/**`` every job beneath it,
``**`` every job. Plain fnmatch
would let ``deploy/*`` match ``deploy/../vm/create``; segment matching, and refusing paths
that are not canonical job paths, closes that door whatever the router does with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from runner.errors import Forbidden

# ``cli``: ``runner run`` in a terminal of the host, by the local account named; ``slack``
# and ``teams``: a chat user (``T123/U456``, an AAD object id) whose platform signed the
# command.
Kind = Literal["user", "token", "webhook", "cli", "anonymous", "slack", "teams"]

EVERYTHING = ("**",)
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9_-]*")


def _match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    if pattern == ["**"]:  # a trailing ** is what lies beneath: one segment or more
        return bool(path)
    if pattern[0] == "**":
        return any(_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], pattern[0]) and _match(pattern[1:], path[1:])


def job_matches(pattern: str, job_path: str) -> bool:
    """True if ``job_path`` (e.g. ``deploy/site``) is one of the jobs ``pattern`` names."""
    segments = job_path.strip("/").split("/")
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        return False
    return _match(pattern.strip("/").split("/"), segments)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (or the anonymous one) and the jobs it may run."""

    kind: Kind
    name: str
    delivery_id: str | None = None
    job_patterns: tuple[str, ...] = EVERYTHING

    def may_run(self, job_path: str) -> bool:
        """True if this principal may start a run of ``job_path``."""
        if self.job_patterns == EVERYTHING:
            # Unrestricted: odd paths are the router's to answer (404), not a 403.
            return True
        return any(job_matches(p, job_path) for p in self.job_patterns)

    def ensure_may_run(self, job_path: str) -> None:
        """Raise Forbidden, naming what this principal may run, unless it may run this."""
        if not self.may_run(job_path):
            raise Forbidden(
                f"{self.caller} may not run {job_path}; it may run: "
                + ", ".join(self.job_patterns),
                caller=self.caller,
                job=job_path,
            )

    @property
    def caller(self) -> str:
        """What a run records as who started it: ``user:alice``, ``webhook:github/<id>``…"""
        if self.kind == "anonymous":
            return "anonymous"
        if self.kind == "webhook" and self.delivery_id:
            return f"webhook:{self.name}/{self.delivery_id}"
        return f"{self.kind}:{self.name}"

    @classmethod
    def user(cls, name: str) -> Principal:
        return cls("user", name)

    @classmethod
    def token(cls, name: str, jobs: tuple[str, ...]) -> Principal:
        return cls("token", name, None, jobs)

    @classmethod
    def cli(cls, account: str) -> Principal:
        """Whoever runs ``runner run`` on the host (holding its state and config anyway)."""
        return cls("cli", account)

    @classmethod
    def webhook(cls, source: str, delivery_id: str | None, jobs: tuple[str, ...]) -> Principal:
        """A delivery whose signature a verifier checked: ``source`` is e.g. ``github``."""
        return cls("webhook", source, delivery_id, jobs)


ANONYMOUS = Principal("anonymous", "anonymous")

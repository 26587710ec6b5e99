"""From a chat command to a run, the same way for every platform: parse, find the job,
check who may run it, refuse secrets, start it through the Runs service (the same
admission as HTTP: every problem listed), and say what happened in an :class:`Outcome`
the platform renders."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal

from runner.auth.principal import EVERYTHING, Principal
from runner.auth.ratelimit import RateLimiter
from runner.chat.command import Command, parse
from runner.errors import (
    BadRequest,
    Busy,
    Draining,
    Forbidden,
    NotFound,
    ParameterError,
    ParameterProblem,
)
from runner.kinds import Job
from runner.records import RunRecord, Trigger
from runner.replays import Key
from runner.service import Runs, StartRequest

Kind = Literal["started", "replayed", "help", "refused"]


@dataclass(frozen=True)
class ChatUser:
    """Who typed the command: ``slack`` ``T123/U456`` or ``teams`` ``<AAD object id>``."""

    platform: Literal["slack", "teams"]
    id: str
    name: str = ""

    @property
    def principal(self) -> Principal:
        return Principal(self.platform, self.id, job_patterns=EVERYTHING)

    @property
    def caller(self) -> str:
        return self.principal.caller


@dataclass(frozen=True)
class Outcome:
    """What the command came to: a run started (or found again, for a retry), help, or a
    refusal in words (``problems``: each bad parameter)."""

    kind: Kind
    text: str = ""
    run: RunRecord | None = None
    job: Job | None = None
    jobs: tuple[Job, ...] = ()
    problems: tuple[ParameterProblem, ...] = field(default=())


class ChatStarter:
    """Starts runs for one platform's users.

    ``allow``: the users (``T123/*``, ``<object id>``, ``*``) who may run the jobs whose
    runner.toml entry names no ``allow`` of its own; a job's own list decides for it (with
    ``slack:T123/U456`` entries). Empty: chat runs only the jobs that name their users.
    """

    def __init__(
        self,
        runs: Runs,
        platform: Literal["slack", "teams"],
        allow: tuple[str, ...] = (),
        limiter: RateLimiter | None = None,
    ) -> None:
        self.runs = runs
        self.platform = platform
        self.allow = allow
        self.limiter = limiter

    async def handle(self, user: ChatUser, text: str, *, key: bytes, trigger: Trigger) -> Outcome:
        """``key``: what makes a retry of this command the same command (its signed body)."""
        try:
            command = parse(text)
        except BadRequest as exc:
            return Outcome("refused", str(exc))
        if command.job is None:
            return Outcome("help", jobs=tuple(j for j in self.runs.jobs() if self.may_use(user, j)))
        job = self.runs.find(command.job)
        if job is None or not self.may_use(user, job):
            # Not told apart: whether a job exists is for those who may run it.
            return Outcome("refused", self._no_such(user, command.job))
        if command.help:
            return Outcome("help", job=job)
        refusal = self._secret_refusal(job, command)
        if refusal is not None:
            return Outcome("refused", refusal, job=job)
        if self.limiter is not None and (wait := self.limiter.take(user.caller)) > 0:
            return Outcome("refused", f"too many runs started by you: try again in {wait:.0f} s")
        request = StartRequest(
            job.path,
            command.params,
            user.principal,
            trigger=trigger,
            replay=(Key.delivery_body(job.path, self.platform, key),),
        )
        try:
            started = await self.runs.start(request)
        except ParameterError as exc:
            return Outcome("refused", f"/{job.path} was not started", job=job,
                           problems=tuple(exc.problems))  # fmt: skip
        except (Forbidden, NotFound, Busy, Draining) as exc:
            return Outcome("refused", str(exc), job=job)
        kind: Kind = "replayed" if started.replayed else "started"
        return Outcome(kind, run=started.run, job=job)

    def may_use(self, user: ChatUser, job: Job) -> bool:
        policy = self.runs.policies.for_job(job.path)
        if policy is not None and policy.allow:
            return policy.allows(user.platform, user.id)
        return any(fnmatch.fnmatchcase(user.id, pattern) for pattern in self.allow)

    def _no_such(self, user: ChatUser, job: str) -> str:
        return (
            f"{user.caller} may not run /{job}, or there is no such job. `help` lists the "
            f"jobs you may run; to be allowed, ask the runner's operator to add "
            f'"{user.caller}" to the job\'s allow list in runner.toml (or "{user.id}" to '
            f"[chat.{self.platform}] allow)."
        )

    @staticmethod
    def _secret_refusal(job: Job, command: Command) -> str | None:
        """A chat message is not a secret channel: a secret given in it is refused, and a
        required one with nothing to supply it is explained before admission says
        "missing"."""
        given = sorted(set(command.params) & job.secret_names)
        if given:
            return (
                f"{', '.join(given)} {'is a secret' if len(given) == 1 else 'are secrets'}: "
                "a chat message is not a secret channel, so it is not taken from chat. Give "
                "the job a default for it, or start it with `runner call`."
            )
        required = set(job.schema().get("required", ()))
        needed = sorted((required & job.secret_names) - set(command.params))
        if needed:
            return (
                f"/{job.path} needs the secret {', '.join(needed)}, which chat cannot carry: "
                "start it with `runner call`, or give the job a default for it."
            )
        return None

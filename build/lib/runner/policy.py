"""Per-job policy from runner.toml: webhook verification and who may run the job.

    [jobs."ci/deploy"]
    verify = "github"              # github | gitlab | slack | teams | standard
    secret = "env:DEPLOY_HOOK"     # or "file:/run/secrets/hook"; several: a list
    allow = ["user:alice", "token:ci-*", "webhook:github"]

Only the secret's *source* is kept here; the value is read at start-up (``runner.webhooks
.load_secret``) and never written anywhere.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ConfigError

SCHEMES = ("github", "gitlab", "slack", "teams", "standard")


@dataclass(frozen=True)
class JobPolicy:
    """What runner.toml says about one job (or a pattern of jobs, e.g. ``deploy/*``)."""

    job: str
    verify: str | None = None
    secrets: tuple[str, ...] = ()  # sources: "env:NAME" / "file:PATH"
    allow: tuple[str, ...] = ()  # empty: anyone authenticated

    def matches(self, job_path: str) -> bool:
        return fnmatch.fnmatchcase(job_path, self.job) and "/.." not in job_path

    def allows(self, caller_kind: str, caller_name: str) -> bool:
        """``allow`` entries are ``kind:name`` with shell-style wildcards in the name."""
        # ``runner run`` on the host: its account holds the state dir and config anyway.
        if not self.allow or caller_kind == "cli":
            return True
        return any(
            kind == caller_kind and fnmatch.fnmatchcase(caller_name, name)
            for kind, _, name in (entry.partition(":") for entry in self.allow)
        )


def policies_from_toml(table: dict[str, Any], path: Path) -> tuple[JobPolicy, ...]:
    out = []
    for job, body in table.items():
        where = f'{path}: [jobs."{job}"]'
        if not isinstance(body, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(body) - {"verify", "secret", "allow"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        verify = body.get("verify")
        if verify is not None and verify not in SCHEMES:
            raise ConfigError(f"{where}: verify must be one of {', '.join(SCHEMES)}")
        secret = body.get("secret", [])
        secrets = (secret,) if isinstance(secret, str) else tuple(secret)
        if verify and not secrets:
            raise ConfigError(f'{where}: verify = "{verify}" needs secret = "env:NAME"')
        for spec in secrets:
            if not spec.startswith(("env:", "file:")):
                # Never echo the value: a secret pasted in place is the usual mistake here.
                raise ConfigError(f'{where}: secret must be "env:NAME" or "file:PATH"')
        allow = body.get("allow", [])
        if isinstance(allow, str):
            allow = [allow]
        for entry in allow:
            if entry.partition(":")[0] not in ("user", "token", "webhook"):
                raise ConfigError(f"{where}: allow entries are user:NAME, token:NAME, webhook:X")
        out.append(JobPolicy(job.strip("/"), verify, secrets, tuple(allow)))
    return tuple(out)


def policy_for(policies: tuple[JobPolicy, ...], job_path: str) -> JobPolicy | None:
    """The first policy whose job pattern matches (runner.toml order)."""
    return next((p for p in policies if p.matches(job_path)), None)


class Policies:
    """Which policy applies to which job: resolved once per served job at start, so every
    layer that asks (the webhook gate, the Runs service) gets the same answer at the cost
    of a dictionary lookup. A path that is no job is matched as it comes (and is answered
    404 later), never cached: such paths are the caller's to invent."""

    def __init__(self, policies: tuple[JobPolicy, ...], jobs: Iterable[str]) -> None:
        self.all = policies
        self._by_job = {job: policy_for(policies, job) for job in jobs}

    def for_job(self, job_path: str) -> JobPolicy | None:
        if job_path in self._by_job:
            return self._by_job[job_path]
        return policy_for(self.all, job_path)

    @property
    def verifying(self) -> bool:
        """True when some job's deliveries must carry a webhook signature."""
        return any(p.verify for p in self.all)

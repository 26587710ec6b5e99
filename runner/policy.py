"""Per-job policy from runner.toml: webhook verification and who may run the job.

    [jobs."ci/deploy"]
    verify = "github"              # github | gitlab | slack | teams | standard
    secret = "env:DEPLOY_HOOK"     # or "file:/run/secrets/hook", or "keyvault:https://
                                   # VAULT.vault.azure.net/secrets/NAME"; several: a list
    allow = ["user:alice", "token:ci-*", "webhook:github", "slack:T123/*"]
    notify = ["https://hooks.example.com/deploys"]   # besides the global ``notify``
    events = ["push"]              # deliveries of other events start nothing (said why)
    when = { "body.ref" = "refs/heads/main" }
    params = { ref = "body.ref", sha = "body.after" }   # the delivery → parameters

Patterns match job paths segment by segment, like token patterns (``deploy/*`` is every
job directly under deploy, ``deploy/**`` every one beneath it). Where several entries
match a job, the most specific one decides each thing it says — its ``verify`` (with its
``secret``), ``allow``, ``notify``, ``events``, ``when`` and ``params`` — and less
specific entries fill in what it does not say: a broad ``verify`` is never dropped by a
narrower entry that only sets ``allow``. Two equally specific entries that disagree about
a served job stop the start with a message. ``events``, ``when`` and ``params`` need
``verify``.

Only the secret's *source* is kept here; the value is read at start-up (by the runtime's
``runner.secrets.SecretSources``, Key Vault references kept fresh) and never written anywhere.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import deliveries
from runner.auth.principal import job_matches
from runner.errors import ConfigError

SCHEMES = ("github", "gitlab", "slack", "teams", "standard")
# Who an allow list can name: chat users are ``slack:TEAM/USER`` and ``teams:<object id>``.
ALLOW_KINDS = ("user", "token", "webhook", "slack", "teams")


@dataclass(frozen=True)
class JobPolicy:
    """What runner.toml says about one job (or a pattern of jobs, e.g. ``deploy/*``)."""

    job: str
    verify: str | None = None
    secrets: tuple[str, ...] = ()  # sources: "env:NAME" / "file:PATH" / "keyvault:URL"
    allow: tuple[str, ...] = ()  # empty: anyone authenticated
    notify: tuple[str, ...] = ()  # URLs (or sources of URLs) told when a run ends
    # What a verified delivery must be (runner.deliveries), and its mapping to parameters.
    events: tuple[str, ...] = ()
    when: tuple[deliveries.Condition, ...] = ()
    params: deliveries.Params = ()

    def matches(self, job_path: str) -> bool:
        return job_matches(self.job, job_path)

    @property
    def specificity(self) -> tuple[int, int]:
        """More literal segments first, then fewer wildcard characters."""
        segments = self.job.split("/")
        literal = sum(1 for seg in segments if not any(c in seg for c in "*?["))
        wild = sum(self.job.count(c) for c in "*?[")
        return literal, -wild

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
        unknown = set(body) - {"verify", "secret", "allow", "notify", *deliveries.KEYS}
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
            if not spec.startswith(("env:", "file:", "keyvault:")):
                # Never echo the value: a secret pasted in place is the usual mistake here.
                raise ConfigError(
                    f'{where}: secret must be "env:NAME", "file:PATH" or "keyvault:https://'
                    'VAULT.vault.azure.net/secrets/NAME"'
                )
        if not re.fullmatch(r"[a-z0-9_\-*?\[\]!/]+", job.strip("/")):
            raise ConfigError(f"{where}: a job pattern is a job path with * ? [ ] wildcards")
        allow = body.get("allow", [])
        if isinstance(allow, str):
            allow = [allow]
        for entry in allow:
            if entry.partition(":")[0] not in ALLOW_KINDS:
                raise ConfigError(
                    f"{where}: allow entries are user:NAME, token:NAME, webhook:X, "
                    "slack:TEAM/USER or teams:OBJECT-ID"
                )
        notify = body.get("notify", [])
        notify = (notify,) if isinstance(notify, str) else tuple(notify)
        for target in notify:
            if not target.startswith(("https://", "http://", "env:", "file:", "keyvault:")):
                raise ConfigError(f"{where}: notify entries are http(s) URLs or env:/file:")
        out.append(
            JobPolicy(
                job.strip("/"), verify, secrets, tuple(allow), notify, **_delivery(body, where)
            )
        )
    return tuple(out)


def _delivery(body: dict[str, Any], where: str) -> dict[str, Any]:
    """``events``, ``when`` and ``params`` as given (compiled: a bad expression stops the
    start, naming the entry)."""
    out: dict[str, Any] = {}
    if "events" in body:
        out["events"] = deliveries.events_from_toml(body["events"], where)
    if "when" in body:
        out["when"] = deliveries.when_from_toml(body["when"], where)
    if "params" in body:
        out["params"] = deliveries.params_from_toml(body["params"], where)
    return out


def policy_for(policies: tuple[JobPolicy, ...], job_path: str) -> JobPolicy | None:
    """The policy that applies to ``job_path``: the matching entries cascaded, most
    specific first (ConfigError when two equally specific ones disagree)."""
    matching = sorted(
        (p for p in policies if p.matches(job_path)), key=lambda p: p.specificity, reverse=True
    )
    if not matching:
        return None
    verify = _decide(matching, job_path, "verify", lambda p: p.verify is not None)
    allow = _decide(matching, job_path, "allow", lambda p: bool(p.allow))
    notify = _decide(matching, job_path, "notify", lambda p: bool(p.notify))
    rules: dict[str, Any] = {}
    for what in deliveries.KEYS:
        found = _decide(matching, job_path, what, _says(what))
        rules[what] = getattr(found, what) if found else ()
    if any(rules.values()) and not verify:
        given = " and ".join(w for w in rules if rules[w])
        raise ConfigError(
            f"/{job_path}: runner.toml sets {given} for it, which choose and read verified "
            "webhook deliveries: give it verify and secret too"
        )
    return JobPolicy(
        job=(verify or matching[0]).job,
        verify=verify.verify if verify else None,
        secrets=verify.secrets if verify else (),
        allow=allow.allow if allow else (),
        notify=notify.notify if notify else (),
        **rules,
    )


def _says(what: str) -> Callable[[JobPolicy], bool]:
    return lambda p: bool(getattr(p, what))


def _decide(
    matching: list[JobPolicy], job: str, what: str, says: Callable[[JobPolicy], bool]
) -> JobPolicy | None:
    """The most specific entry that says ``what``; two as specific that differ: an error."""
    saying = [p for p in matching if says(p)]
    if not saying:
        return None
    top = [p for p in saying if p.specificity == saying[0].specificity]
    said = {(p.verify, p.secrets, p.allow) if what == "verify" else getattr(p, what) for p in top}
    if len(said) > 1:
        raise ConfigError(
            f"/{job}: runner.toml entries {', '.join(repr(p.job) for p in top)} are as "
            f"specific as each other and set different {what}; make one more specific"
        )
    return saying[0]


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
        try:
            return policy_for(self.all, job_path)
        except ConfigError:
            return None  # no served job: answered 404 whatever runner.toml says

    @property
    def verifying(self) -> bool:
        """True when some job's deliveries must carry a webhook signature."""
        return any(p.verify for p in self.all)

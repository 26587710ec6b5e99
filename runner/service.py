"""The Runs service: the one set of use cases under every way in.

HTTP handlers, ``runner run`` in a terminal, and the clients, chat adapters and web page
built on them call these operations and nothing below them::

    jobs / job          the catalogue; one job (NotFound)
    (History: reading only, what ``runner runs``/``logs`` use beside a running server)
    start(request)      policy (allow; a delivery's filters and mapping), admission,
                        replays (delivery ids, Idempotency-Key), submit
                                                         → Started | Refused | Ignored
    get / list_runs     one run, the history (only what the principal may see)
    follow(id, after)   committed events after ``after``: replay, then live, until done
    log(id)             the stored events, as they are now
    cancel(id)          a queued or running run
    status()            ready or draining; runs running and queued

Refusals are domain errors (:mod:`runner.errors`); each transport says them its own way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runner import admission
from runner.admission import Rules
from runner.auth.principal import EVERYTHING, Principal
from runner.catalogue import Catalogue
from runner.deliveries import Mapped, Payload, ignores, map_params
from runner.errors import (
    Forbidden,
    Ignored,
    NotFound,
    ParameterError,
    ParameterProblem,
    RunnerError,
    Unavailable,
)
from runner.executor import Executor
from runner.journal import PAGE, Journal
from runner.kinds import Job, Submission
from runner.policy import Policies
from runner.records import STATES, Event, Notice, RunRecord, Trigger, new_run_id
from runner.replays import Key, Replays, fingerprint
from runner.secrets import SecretSources
from runner.store.base import Store

log = logging.getLogger("runner.runs")
MAX_PAGE = 500


@dataclass(frozen=True)
class StartRequest:
    """Everything a way in knows about a run it wants started."""

    job: str
    params: Mapping[str, Any]
    principal: Principal
    body: bytes = b""
    timeout: Any = None  # as asked (text from a query string…); admission checks it
    trigger: Trigger = field(default_factory=Trigger)
    # Delivery ids or an Idempotency-Key: a repeat of any answers with the original run.
    replay: tuple[Key, ...] = ()
    # Return once the record is stored (see Executor.submit).
    durable: bool = True
    # A verified webhook delivery's content: runner.toml's events/when/params apply to it.
    payload: Payload | None = None


@dataclass(frozen=True)
class Started:
    """The run a start request got; ``replayed``: started earlier by a copy of it."""

    run: RunRecord
    replayed: bool = False


@dataclass(frozen=True)
class RunPage:
    """One page of the history, newest first; ``next_before`` continues it."""

    runs: list[RunRecord]
    next_before: str | None


@dataclass(frozen=True)
class Status:
    ready: bool
    running: int
    queued: int
    reason: str | None = None  # why not ready


class History:
    """Reading runs: what needs only the store and the journal (``runner runs`` and
    ``runner logs`` use it alone, beside a server that may hold the runs)."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        live: Callable[[str], RunRecord | None] = lambda run_id: None,
    ) -> None:
        self.store = store
        self.journal = journal
        self._live = live

    def may_see(self, principal: Principal, job: str) -> bool:
        """Whether ``principal`` may see (and cancel) the runs of ``job``."""
        return principal.may_run(job)

    def visible_jobs(self, principal: Principal) -> list[str] | None:
        """The jobs whose runs ``principal`` may see, or None for all of them."""
        return None

    async def get(self, run_id: str, principal: Principal | None = None) -> RunRecord:
        """A run's record — the live one when this process holds it — if ``principal``
        may see it (NotFound otherwise: whether it exists is not told)."""
        run = self._live(run_id) or await self.store.get(run_id)
        if run is None or (principal is not None and not self.may_see(principal, run.job)):
            raise NotFound(f"no run {run_id}")
        return run

    async def list_runs(
        self,
        principal: Principal,
        *,
        job: str | None = None,
        states: Sequence[str] = (),
        before: str | None = None,
        limit: int = 50,
        caller: str | None = None,
    ) -> RunPage:
        """The history, newest first, of the runs ``principal`` may see; ``caller``:
        started by it (``webhook:github`` also matches ``webhook:github/<delivery>``)."""
        problems = []
        bad = [s for s in states if s not in STATES]
        if bad:
            problems.append(ParameterProblem("state", f"unknown state(s) {', '.join(bad)}"))
        if not 1 <= limit <= MAX_PAGE:
            problems.append(
                ParameterProblem("limit", f"must be a whole number from 1 to {MAX_PAGE}")
            )
        if problems:
            raise ParameterError("_runs", problems)
        # A token sees the runs of the jobs it may run; a job's allow list bounds who sees
        # its runs. The store is asked for those jobs only, so that neither the page nor
        # its cursor tells anything of the others.
        runs = await self.store.list_runs(
            job=job.strip("/") if job else None,
            jobs=self.visible_jobs(principal),
            states=states,
            before=before,
            limit=limit,
            caller=caller,
        )
        return RunPage(runs, runs[-1].id if len(runs) == limit else None)

    def follow(
        self, run_id: str, after: int = 0, *, idle: float | None = None
    ) -> AsyncIterator[list[Event]]:
        """Batches of committed events after ``after``: replay, then live, until done;
        with ``idle``, an empty batch after each ``idle`` seconds of silence."""
        return self.journal.follow(run_id, after, idle=idle)

    async def notices(self, run_id: str, principal: Principal) -> list[Notice]:
        """The notices of a run ``principal`` may see: each one's tries and outcome."""
        run = await self.get(run_id, principal)
        return await self.store.notices(run.id)

    async def log(self, run_id: str) -> AsyncIterator[list[Event]]:
        """The run's stored events in pages, as they are now."""
        last = 0
        while batch := await self.store.events(run_id, last, PAGE):
            last = batch[-1].seq
            yield batch


class Runs(History):
    """Use cases over the catalogue, the executor and the store."""

    def __init__(
        self,
        catalogue: Catalogue,
        executor: Executor,
        journal: Journal,
        store: Store,
        rules: Rules,
        policies: Policies,
        replay_ttl: float,
        *,
        secrets: SecretSources | None = None,
    ) -> None:
        super().__init__(store, journal, executor.live)
        self.catalogue = catalogue
        self.executor = executor
        self.rules = rules
        self.policies = policies
        self.secrets = secrets
        self.replays = Replays(store, executor.owner, self._find, ttl=replay_ttl)

    # -- jobs ------------------------------------------------------------------------

    def jobs(self) -> Iterator[Job]:
        return iter(self.catalogue)

    def find(self, path: str) -> Job | None:
        """The job at ``path`` (``vm/create``, spelled exactly), or None."""
        return self.catalogue.get(path)

    def job(self, path: str) -> Job:
        found = self.find(path)
        if found is None:
            raise NotFound(f"no job at /{path}; GET /_jobs lists them")
        return found

    # -- starting --------------------------------------------------------------------

    async def start(self, req: StartRequest) -> Started:
        """Start a run, or find the one an earlier copy of this request started."""
        job = self.job(req.job)
        self._authorize(job, req.principal)
        params, mapped = self._delivered(job, req)
        params = await self._secret_defaults(job, params)
        try:
            sub = admission.prepare(job, params, self.rules, body=req.body, timeout=req.timeout)
        except ParameterError as exc:
            if mapped is None:
                raise
            raise ParameterError(job.path, mapped.explain(exc.problems)) from None
        if mapped is not None:
            if mapped.failed:
                raise ParameterError(job.path, mapped.explain([]))
            fields = {n: sub.recorded[n] for n in mapped.sources if n in sub.recorded}
            req = replace(req, trigger=replace(req.trigger, fields=fields))
        run_id = new_run_id()
        if req.replay:
            original = await self._claim(req, job.path, sub.recorded, run_id)
            if original is not None:
                return Started(original, replayed=True)
        try:
            run = await self.executor.submit(
                sub,
                req.principal.caller,
                trigger=req.trigger,
                durable=req.durable,
                run_id=run_id,
            )
        except Exception:
            for key in req.replay:
                await self.replays.release(key, run_id)
            raise
        return Started(run)

    async def _secret_defaults(self, job: Job, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``params`` with each secret the request leaves out read from the source its
        default names: then validated, masked and never stored like a secret given."""
        # An empty value is a form's blank field: no one means an empty secret.
        missing = {n: s for n, s in job.secret_sources.items() if params.get(n) in (None, "")}
        if not missing or self.secrets is None:
            return params
        filled = dict(params)
        for name, source in missing.items():
            try:
                filled[name] = (await self.secrets.read(source)).reveal().decode()
            except RunnerError as exc:
                log.error("/%s: the default of %s cannot be read: %s", job.path, name, exc)
                raise Unavailable(
                    f"the default of parameter {name} cannot be read now (the server's log "
                    "says why); give it, or try again later",
                    retry_after=30,
                ) from None
        return filled

    def maps_deliveries(self, job: str) -> bool:
        """True when runner.toml maps ``job``'s deliveries to its parameters (``params``):
        then a delivery's body is read only through that mapping."""
        policy = self.policies.for_job(job)
        return policy is not None and bool(policy.params)

    def _delivered(self, job: Job, req: StartRequest) -> tuple[Mapping[str, Any], Mapped | None]:
        """A delivery's filters (Ignored when it misses one) and mapped parameters, beside
        those of the query string (a name given by both is a problem)."""
        policy = self.policies.for_job(job.path)
        if req.payload is None or policy is None:
            return req.params, None
        why = ignores(policy.events, policy.when, req.payload)
        if why is not None:
            raise Ignored(job.path, why)
        if not policy.params:
            return req.params, None
        mapped = map_params(policy.params, req.payload)
        both = [n for n in mapped.sources if n in req.params]
        if both:
            said = "given in the query string and mapped from the delivery by runner.toml"
            raise ParameterError(job.path, [ParameterProblem(n, said) for n in both])
        return {**req.params, **mapped.values}, mapped

    def may_see(self, principal: Principal, job: str) -> bool:
        policy = self.policies.for_job(job)
        allowed = policy is None or policy.allows(principal.kind, principal.name)
        return allowed and principal.may_run(job)

    def visible_jobs(self, principal: Principal) -> list[str] | None:
        if principal.job_patterns == EVERYTHING and not any(p.allow for p in self.policies.all):
            return None
        return [job.path for job in self.catalogue if self.may_see(principal, job.path)]

    def _authorize(self, job: Job, principal: Principal) -> None:
        policy = self.policies.for_job(job.path)
        if policy is not None and not policy.allows(principal.kind, principal.name):
            raise Forbidden(
                f"{principal.caller} may not run /{job.path} (runner.toml allows: "
                f"{', '.join(policy.allow)})"
            )
        principal.ensure_may_run(job.path)

    async def _claim(
        self, req: StartRequest, job: str, recorded: Mapping[str, Any], run_id: str
    ) -> RunRecord | None:
        """Claim each of the request's keys for ``run_id``; the original run if one was
        taken already (then the keys claimed here are given back)."""
        request = fingerprint(job, recorded, req.body)
        taken: list[Key] = []
        for key in req.replay:
            try:
                original = await self.replays.claim(key, request, run_id, job)
            except Exception:
                original = None
                await self._release(taken, run_id)
                raise
            if original is not None:
                await self._release(taken, run_id)
                return original
            taken.append(key)
        return None

    async def _release(self, keys: list[Key], run_id: str) -> None:
        for key in keys:
            await self.replays.release(key, run_id)

    async def _find(self, run_id: str) -> RunRecord | None:
        return self.executor.live(run_id) or await self.store.get(run_id)

    async def resubmit(self, run: RunRecord) -> Submission | str:
        """A queued run found at start, admitted again — or why it cannot run any more."""
        job = self.catalogue.get(run.job)
        if job is None:
            return f"job /{run.job} no longer exists"
        if run.had_secrets:
            return "secrets are never stored, so it cannot resume; start it again"
        body = await self.store.body(run.id)
        try:
            return admission.prepare(job, run.params, self.rules, body=body, timeout=run.timeout)
        except ParameterError as exc:
            return f"its parameters are no longer valid: {exc}"

    # -- control ---------------------------------------------------------------------

    async def cancel(
        self, run_id: str, principal: Principal | None = None, reason: str = "cancelled by request"
    ) -> RunRecord:
        run = await self.get(run_id, principal)
        return await self.executor.cancel(run.id, reason)

    def status(self) -> Status:
        """Ready to take runs? Not while draining, nor while the store fails to write
        (every start would be refused: a load balancer should send callers elsewhere)."""
        e = self.executor
        reason = "draining" if e.draining else "store failing" if self.journal.failing else None
        return Status(reason is None, len(e.running), len(e.queue), reason)

"""Python jobs: a module with a docstring and ``async def run(ctx, …)``.

``run``'s keyword parameters, with their annotations and defaults, are the job's
parameters (:class:`runner.params.ParamSpec`); ``TIMEOUT`` and ``LOCK`` module constants
declare its limit and lock key; ``check(params)`` adds rules across parameters. A job
shares the server's event loop: it must await, not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.util
import inspect
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from runner.bodies import FORM, BodyError, form_pairs, is_json_type, json_object
from runner.context import Context
from runner.errors import JobLoadError, ParameterError, ParameterProblem, UnsupportedMediaType
from runner.kinds.base import Admitted, Host, Job, Sink, Submission, lock_fields
from runner.params import ParamSpec
from runner.records import RunRecord
from runner.settings import LimitSettings

Check = Callable[[dict[str, Any]], Mapping[str, str] | None]


@dataclass(frozen=True, eq=False)
class PythonJob(Job):
    """A job written as a Python module."""

    kind: ClassVar[str] = "python"
    delivery_body_is_params: ClassVar[bool] = True

    spec: ParamSpec
    func: Callable[..., Any]
    check: Check | None = None

    @classmethod
    def name_of(cls, file: Path) -> str | None:
        if file.suffix != ".py":
            return None
        if "." in file.stem:
            raise JobLoadError(f"{file}: job names may not contain dots")
        return file.stem

    @classmethod
    def load(cls, path: str, file: Path) -> PythonJob:
        module = _import(path, file)
        func = getattr(module, "run", None)
        if func is None or not inspect.iscoroutinefunction(func):
            raise JobLoadError(f"{file}: a Python job defines `async def run(ctx, ...)`")
        doc = inspect.getdoc(module)
        if not doc:
            raise JobLoadError(f"{file}: add a module docstring; it is the job's description")
        try:
            spec = ParamSpec.from_function(path, func)
        except JobLoadError as exc:
            raise JobLoadError(f"{file}: {exc}") from exc
        timeout = getattr(module, "TIMEOUT", None)
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise JobLoadError(f"{file}: TIMEOUT must be a positive number of seconds")
        lock = getattr(module, "LOCK", None)
        if lock is not None:
            if not isinstance(lock, str):
                raise JobLoadError(f"{file}: LOCK must be a string such as 'rg:{{rg}}'")
            unknown = [f for f in lock_fields(lock) if f not in spec.names]
            if unknown:
                raise JobLoadError(f"{file}: LOCK uses unknown parameters: {', '.join(unknown)}")
        check = getattr(module, "check", None)
        if check is not None and (not callable(check) or inspect.iscoroutinefunction(check)):
            raise JobLoadError(f"{file}: check must be a plain function check(params) -> dict")
        limit = getattr(module, "OUTPUT_LIMIT", None)
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise JobLoadError(f"{file}: OUTPUT_LIMIT must be a positive number of bytes")
        return cls(path, file, doc, timeout, lock, limit, spec, func, check)

    def schema(self) -> dict[str, Any]:
        return self.spec.json_schema()

    @property
    def secret_names(self) -> frozenset[str]:
        return self.spec.secrets

    @property
    def secret_sources(self) -> Mapping[str, str]:
        return self.spec.sources

    def body_schema(self) -> dict[str, Any]:
        schema = self.schema()
        return {
            "required": False,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }

    def body_params(self, body: bytes, ctype: str, limits: LimitSettings) -> list[tuple[str, Any]]:
        """A form's fields or a JSON object's: a Python job's body is its parameters."""
        try:
            if ctype == FORM:
                return form_pairs(body, limits.max_params)
            if is_json_type(ctype):
                return list(json_object(body).items())
        except BodyError as exc:
            problem = ParameterProblem(exc.name or "body", exc.reason)
            raise ParameterError(self.path, [problem]) from None
        raise UnsupportedMediaType(f"a Python job takes a JSON object or a form body, not {ctype}")

    def admit(
        self,
        raw: Mapping[str, Any],
        body: bytes,
        limits: LimitSettings,
        script_env: Mapping[str, str],
        problems: list[ParameterProblem],
    ) -> Admitted:
        if problems:
            raise ParameterError(self.path, problems)
        values = self.spec.validate(raw)
        if self.check is not None:
            # Rules across parameters (exactly one of pw/ssh_key…): still a 422.
            found = self.check(dict(values)) or {}
            if found:
                raise ParameterError(self.path, [ParameterProblem(n, r) for n, r in found.items()])
        secrets = self.spec.secret_values(values)
        return Admitted(values, self.spec.redact(values), secrets)

    async def invoke(
        self,
        sub: Submission,
        run: RunRecord,
        sink: Sink,
        mask: Callable[[str], str],
        host: Host,
    ) -> int:
        ctx = Context(
            run_id=run.id,
            job=run.job,
            params=run.params,
            sink=sink,
            mask=mask,
            resources=host.resources,
            timeout=run.timeout,
            drained=host.drained,
            secrets=host.secrets,
            trigger=run.trigger,
        )
        tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        _track_tasks(asyncio.get_running_loop())
        token = _JOB_TASKS.set(tasks)
        try:
            result = await self.func(ctx, **sub.values)
        except asyncio.CancelledError:
            ctx.cancelled.set()
            raise
        finally:
            # Not in this context when an abandoned job is closed at shutdown.
            with contextlib.suppress(ValueError):
                _JOB_TASKS.reset(token)
            self._end_leftovers(tasks)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0

    def _end_leftovers(self, tasks: weakref.WeakSet[asyncio.Task[Any]]) -> None:
        """Cancel what the job's own code started and left running: a run that ended
        must not go on printing (its sink is closed anyway) or acting."""
        for task in list(tasks):
            code = getattr(task.get_coro(), "cr_code", None)
            if not task.done() and code is not None and code.co_filename == str(self.file):
                task.cancel()


# The tasks started while a Python job runs, by the job's context (tasks inherit it).
_JOB_TASKS: contextvars.ContextVar[weakref.WeakSet[asyncio.Task[Any]] | None] = (
    contextvars.ContextVar("runner_job_tasks", default=None)
)


def _track_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Install, once per loop, a task factory that notes each task a job starts."""
    previous = loop.get_task_factory()
    if getattr(previous, "runner_tracks_jobs", False):
        return

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Future[Any]:
        task = previous(loop, coro, **kw) if previous else asyncio.Task(coro, loop=loop, **kw)
        owner = _JOB_TASKS.get()
        if owner is not None and isinstance(task, asyncio.Task):
            owner.add(task)
        return task

    factory.runner_tracks_jobs = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)


def _import(path: str, file: Path) -> ModuleType:
    # A name of its own per job path: two create.py files in two folders do not collide.
    name = "runner_jobs." + path.replace("/", ".").replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd loaders
        raise JobLoadError(f"{file}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise JobLoadError(f"{file}: import failed: {type(exc).__name__}: {exc}") from exc
    return module

"""Long-running ARM operations, shown the way a person reading a CI log needs them.

``Operations`` wraps each SDK call (``begin_create_or_update`` and friends) in a *step*: it
says what is being made, how long it has been running every few seconds, and when it is
done; it runs independent steps in parallel in a task group (one failure cancels the
others, and the failure itself is re-raised so the runner can explain it); and it remembers
every step so that a cancelled or failed run can say what it left behind::

    ops = Operations(ctx, plan=["virtual network vm1-vnet", ...])
    vnet, nsg = await ops.parallel(
        ops.run(CREATE, "virtual network vm1-vnet", lambda: net.virtual_networks.begin_…(…)),
        ops.run(CREATE, "network security group vm1-nsg", lambda: …),
    )

Steps take a zero-argument callable, not a coroutine, so a step cancelled before it starts
leaves no un-awaited SDK coroutine behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from runner.context import Context

if TYPE_CHECKING:
    from azure.core.polling import AsyncLROPoller

__all__ = [
    "CREATE",
    "DEALLOCATE",
    "DELETE",
    "POWER_OFF",
    "START",
    "Operations",
    "Step",
    "Verb",
    "authorization_failed",
    "find",
    "needs_role",
]

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")


@dataclass(frozen=True)
class Verb:
    """How a step reads while running and once done: ("creating", "created")."""

    doing: str
    done: str


CREATE = Verb("creating", "created")
DELETE = Verb("deleting", "deleted")
START = Verb("starting", "started")
DEALLOCATE = Verb("deallocating", "deallocated")
POWER_OFF = Verb("stopping", "stopped")

# Seconds between "still creating …: 35 s" progress events of a running step.
PROGRESS_EVERY = 5.0

# Step states.
RUNNING, DONE, FAILED, ABANDONED = "running", "done", "failed", "abandoned"


@dataclass
class Step:
    """One operation asked of Azure."""

    verb: Verb
    what: str  # "virtual network vm1-vnet"
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    state: str = RUNNING
    resource_id: str | None = None
    # Whether Azure accepted the request (the poller exists): an abandoned step that was
    # accepted goes on in Azure without us.
    accepted: bool = False

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {int(value % 60)} s"


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Read the outcome of a task we stopped waiting for, so asyncio does not log it.
    if not task.cancelled():
        task.exception()


class Operations:
    """The steps of one run: progress lines, parallel groups, and what was left behind."""

    def __init__(
        self, ctx: Context, *, plan: list[str] | None = None, every: float | None = None
    ) -> None:
        self.ctx = ctx
        self.every = PROGRESS_EVERY if every is None else every
        self.plan = list(plan or [])
        self.steps: list[Step] = []
        self.began = time.monotonic()

    # -- one step ---------------------------------------------------------------------------
    async def run(
        self,
        verb: Verb,
        what: str,
        start: Callable[[], Awaitable[AsyncLROPoller[T]]],
    ) -> T:
        """Start a long-running operation, report on it until it ends, return its result."""
        step = self._begin(verb, what)
        try:
            poller = await start()
            step.accepted = True
            waiting = asyncio.ensure_future(poller.result())
            waiting.add_done_callback(_retrieve)
            try:
                while not waiting.done():
                    await asyncio.wait({waiting}, timeout=self.every)
                    if not waiting.done():
                        # A status event: text mode and the log show it as a `runner:` line.
                        self.ctx.progress(
                            f"{verb.doing} {what}: {step.seconds:.0f} s", self._percent()
                        )
            finally:
                waiting.cancel()  # no-op once done; stops polling if we were cancelled
            result = waiting.result()
        except BaseException as exc:
            self._fail(step, exc)
            raise
        self._end(step, getattr(result, "id", None))
        return result

    async def call(self, verb: Verb, what: str, start: Callable[[], Awaitable[T]]) -> T:
        """A quick, synchronous ARM call (e.g. a resource group PUT) shown as a step."""
        step = self._begin(verb, what)
        try:
            step.accepted = True
            result = await start()
        except BaseException as exc:
            self._fail(step, exc)
            raise
        self._end(step, getattr(result, "id", None))
        return result

    def _begin(self, verb: Verb, what: str) -> Step:
        step = Step(verb, what)
        self.steps.append(step)
        self.ctx.print(f"{verb.doing} {what} …")
        return step

    def _end(self, step: Step, resource_id: Any) -> None:
        step.state, step.finished = DONE, time.monotonic()
        step.resource_id = resource_id if isinstance(resource_id, str) else None
        self.ctx.print(f"{step.verb.done} {step.what} ({_seconds(step.seconds)})")

    def _fail(self, step: Step, exc: BaseException) -> None:
        step.finished = time.monotonic()
        if isinstance(exc, asyncio.CancelledError):
            step.state = ABANDONED
        else:
            step.state = FAILED
            # The code only: the runner explains the error itself when the run ends.
            code = getattr(getattr(exc, "error", None), "code", None) or type(exc).__name__
            self.ctx.error(
                f"failed {step.verb.doing} {step.what} after {_seconds(step.seconds)} ({code})"
            )

    def _percent(self) -> float | None:
        if not self.plan:
            return None
        done = sum(1 for s in self.steps if s.state == DONE)
        return 100.0 * done / max(len(self.plan), done)

    # -- groups -----------------------------------------------------------------------------
    @overload
    async def parallel(
        self, a: Coroutine[Any, Any, T1], b: Coroutine[Any, Any, T2], /
    ) -> tuple[T1, T2]: ...

    @overload
    async def parallel(
        self, a: Coroutine[Any, Any, T1], b: Coroutine[Any, Any, T2], c: Coroutine[Any, Any, T3], /
    ) -> tuple[T1, T2, T3]: ...

    @overload
    async def parallel(self, *steps: Coroutine[Any, Any, T]) -> tuple[T, ...]: ...

    async def parallel(self, *steps: Coroutine[Any, Any, Any]) -> tuple[Any, ...]:
        """Run independent steps at once. If one fails the others are cancelled and its
        error is raised (the first one, if several failed; the rest are printed)."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(s) for s in steps]
        except BaseExceptionGroup as failed:
            first, *others = failed.exceptions
            for other in others:
                self.ctx.error(f"also failed: {_first_line(other)}")
            raise first from None
        return tuple(t.result() for t in tasks)

    # -- the account ------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds since this run's first step was planned."""
        return time.monotonic() - self.began

    def left_behind(self) -> list[str]:
        """Lines saying what exists, what Azure is still doing, and what was never started."""
        lines = []
        done = [s for s in self.steps if s.state == DONE and s.verb is CREATE]
        going = [s for s in self.steps if s.state == ABANDONED]
        failed = [s for s in self.steps if s.state == FAILED]
        touched = {s.what for s in self.steps}
        never = [what for what in self.plan if what not in touched]
        if done:
            lines.append("created, and left in place:")
            lines += [f"  {s.what}  {s.resource_id or ''}".rstrip() for s in done]
        if going:
            lines.append("in progress when the run stopped (Azure carries on without the runner):")
            lines += [
                f"  {s.what}" + ("" if s.accepted else " (request sent, may not exist)")
                for s in going
            ]
        if failed:
            lines.append("failed:")
            lines += [f"  {s.what}" for s in failed]
        if never:
            lines.append("not started:")
            lines += [f"  {what}" for what in never]
        return lines


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def find(fetch: Callable[[], Awaitable[T]]) -> T | None:
    """The resource ``fetch`` GETs, or None if Azure answers 404."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return await fetch()
    except ResourceNotFoundError:
        return None


def authorization_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is ARM's 403 AuthorizationFailed (a role the identity lacks)."""
    from azure.core.exceptions import HttpResponseError

    error = getattr(exc, "error", None) if isinstance(exc, HttpResponseError) else None
    return getattr(error, "code", None) == "AuthorizationFailed"


@contextlib.contextmanager
def needs_role(ctx: Context, role: str, scope: str) -> Iterator[None]:
    """Add what a job needs as a whole when Azure refuses one of its calls.

    ARM names the first action refused (often a read, for which Reader would do); a job
    that goes on to write needs more, and only the job knows it.
    """
    try:
        yield
    except Exception as exc:
        if authorization_failed(exc):
            ctx.error(
                f"{ctx.job} needs the {role} role on {scope} (or on the subscription): "
                "grant that rather than the narrower role suggested below."
            )
        raise

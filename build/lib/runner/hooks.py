"""Extensions: the named, few points where a part plugs into the runner.

An extension is registered when the runtime is built and gets, by overriding what it
needs of :class:`Extension`:

    start / close        with the runtime (after the store opens, before it closes)
    on_submitted(run)    a run was accepted                ┐ each called once the event
    on_started(run)      it began executing                │ that says so is committed:
    on_event(run, e)     any event of it                   │ a hook never sees what a
    on_finished(run)     it ended (``done``)               ┘ crash could take back
    explain(exc)         words for a failure it knows (an Azure error → what to do)
    script_env()         variables script jobs need (identity endpoints)
    script_secrets()     values of those no run may show
    lend(ctx)            what Python jobs get as ``await ctx.resource(name)``

Lifecycle hooks are plain functions called on the event loop: they must not block (an
extension with I/O to do schedules its own task and finishes it in ``close``). A hook that
raises is logged and never disturbs the run or the other extensions. Metrics, chat replies
and notifications are extensions, not edits of the engine; Azure is one too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from runner.errors import ConfigError
from runner.records import EV_DONE, EV_RUN, EV_STATUS, RUNNING_STATUS, Event, RunRecord

log = logging.getLogger("runner.hooks")

_HOOKS = ("on_submitted", "on_started", "on_event", "on_finished")


class Extension:
    """Base of every extension; each method does nothing until overridden."""

    #: The name jobs use for what it lends (``ctx.resource(name)``); also in logs.
    name: ClassVar[str] = ""

    async def start(self) -> None:
        """Called once the store is open, before any run starts."""

    async def close(self) -> None:
        """Called when the runtime stops, after the last run was recorded."""

    def on_submitted(self, run: RunRecord) -> None:
        """A run was accepted (its ``run`` event is committed)."""

    def on_started(self, run: RunRecord) -> None:
        """A run began executing."""

    def on_event(self, run: RunRecord, event: Event) -> None:
        """Any committed event of a run, in order."""

    def on_finished(self, run: RunRecord) -> None:
        """A run ended: its ``done`` event is committed and ``run`` holds the outcome."""

    def explain(self, exc: BaseException) -> str | None:
        """A sentence a person can act on for a failure this extension knows, or None."""
        return None

    def script_env(self) -> dict[str, str]:
        """Variables script jobs need to use what this extension serves."""
        return {}

    def script_secrets(self) -> list[str]:
        """Values among :meth:`script_env` (or in this process) no run may show."""
        return []

    async def lend(self, ctx: Any) -> Any:
        """What a Python job gets from ``await ctx.resource(self.name)``."""
        raise NotImplementedError


def _overrides(ext: Extension, method: str) -> bool:
    return getattr(type(ext), method) is not getattr(Extension, method)


class Extensions:
    """The extensions of one runtime, called in registration order."""

    def __init__(self, extensions: Sequence[Extension] = ()) -> None:
        self.all = tuple(extensions)
        # Only the hooks someone overrides are called: with none, a batch costs one check.
        self._hooks: dict[str, list[Callable[..., None]]] = {
            hook: [getattr(e, hook) for e in self.all if _overrides(e, hook)] for hook in _HOOKS
        }
        self.watching = any(self._hooks.values())
        self._lenders = {e.name: e for e in self.all if e.name and _overrides(e, "lend")}

    async def start(self) -> None:
        for ext in self.all:
            await ext.start()

    async def close(self) -> None:
        for ext in reversed(self.all):
            try:
                await ext.close()
            except Exception:
                log.exception("extension %s failed to close", ext.name or type(ext).__name__)

    def committed(self, run: RunRecord, events: Sequence[Event]) -> None:
        """Call the lifecycle hooks for ``events`` of ``run``, just committed."""
        for event in events:
            if event.kind == EV_RUN:
                self._call("on_submitted", run)
            elif event.kind == EV_STATUS and event.data == RUNNING_STATUS:
                self._call("on_started", run)
            if self._hooks["on_event"]:
                self._call("on_event", run, event)
            if event.kind == EV_DONE:
                self._call("on_finished", run)

    def _call(self, hook: str, *args: Any) -> None:
        for fn in self._hooks[hook]:
            try:
                fn(*args)
            except Exception:
                log.exception("%s hook %s failed", hook, getattr(fn, "__qualname__", fn))

    def explain(self, exc: BaseException) -> str | None:
        for ext in self.all:
            found = ext.explain(exc)
            if found is not None:
                return found
        return None

    def script_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for ext in self.all:
            env.update(ext.script_env())
        return env

    def script_secrets(self) -> tuple[str, ...]:
        return tuple(v for ext in self.all for v in ext.script_secrets() if v)

    async def resource(self, name: str, ctx: Any) -> Any:
        lender = self._lenders.get(name)
        if lender is None:
            raise ConfigError(f"this runner lends jobs no {name!r} (see README: Azure)")
        return await lender.lend(ctx)

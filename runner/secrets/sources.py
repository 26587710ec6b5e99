"""Secret sources resolved for the whole process: ``env:``, ``file:`` and ``keyvault:``.

    sources = SecretSources(environ, vault=reader, refresh=300)
    hook = sources.watch("keyvault:https://ops.vault.azure.net/secrets/github-hook")
    await sources.start()          # every reference read once: start-up fails in words
    hook.current                   # per delivery: the value now (an attribute read)

``env:`` and ``file:`` are read when watched. A Key Vault reference is read at
:meth:`SecretSources.start`, then again every ``refresh`` seconds by one background task,
so a rotated secret is in use without a restart while a request never waits for Key
Vault. A read that fails keeps the last good value (logged once per outage, counted by the
observer) and is tried again sooner; a value a ``check`` refuses is not taken either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from runner.errors import ConfigError, RunnerError
from runner.secrets.local import read_local, refused_literal
from runner.secrets.reference import VaultRef, is_reference, parse_reference
from runner.secrets.value import Secret

log = logging.getLogger("runner.secrets")

Check = Callable[[Secret], None]
# A failed refresh is tried again after this many seconds (or ``refresh``, if shorter).
RETRY = 30.0


def check_source(spec: str) -> None:
    """Raise ConfigError unless ``spec`` has a source's form (``env:NAME``, ``file:PATH``,
    ``keyvault:https://…``), for settings parsed before anything is read. A refused spec
    is never echoed: it is most often the secret itself, pasted in."""
    if is_reference(spec):
        parse_reference(spec)
        return
    kind, sep, where = spec.partition(":")
    if not sep or kind not in ("env", "file") or not where:
        raise refused_literal()


class SecretUnavailable(ConfigError):
    """A secret reference that cannot be read now; the message says why, in words."""


class VaultSecret(NamedTuple):
    """What Key Vault gave for a reference: the value and the version it came from."""

    value: str
    version: str


@runtime_checkable
class VaultReader(Protocol):
    """Reads Key Vault secrets for the process (the Azure extension is one)."""

    def check_reference(self, ref: VaultRef) -> None:
        """Raise ConfigError if ``ref`` can never be read here (checked when watched)."""

    async def read_secret(self, ref: VaultRef) -> VaultSecret:
        """The value of ``ref``; SecretUnavailable (in words, never a value) if it cannot."""
        ...


@runtime_checkable
class SecretObserver(Protocol):
    """Told of each Key Vault read and of the values kept through failures (metrics)."""

    def secret_read(self, vault: str, ok: bool) -> None: ...

    def secrets_stale(self, count: int) -> None: ...


class Watched:
    """One secret source as the process holds it: ``current`` is its value now."""

    __slots__ = ("_value", "source")

    def __init__(self, source: str, value: Secret | None = None) -> None:
        self.source = source
        self._value = value

    @property
    def current(self) -> Secret:
        """The value in use (cheap: a delivery may read it each time)."""
        if self._value is None:
            raise SecretUnavailable(f"secret {self.source} has not been read yet")
        return self._value

    def __repr__(self) -> str:
        return f"Watched({self.source!r})"


@dataclass(eq=False)
class _Entry:
    """A Key Vault reference and its refresh state."""

    ref: VaultRef
    watched: Watched
    checks: list[Check] = field(default_factory=list)
    due: float = 0.0  # monotonic time of the next read
    version: str | None = None
    read_at: float | None = None  # monotonic time of the last good read
    failing: str | None = None  # why the last read failed, while it does


class SecretSources:
    """Resolves secret sources; keeps Key Vault references fresh in the background."""

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        vault: VaultReader | None = None,
        refresh: float = 300.0,
        base_dir: Path | None = None,
        observer: SecretObserver | None = None,
    ) -> None:
        self.environ = environ
        self.vault = vault
        self.refresh = refresh
        self.retry = min(refresh, RETRY)
        self.base_dir = base_dir
        self.observer = observer
        self._entries: dict[str, _Entry] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._started = False

    # -- what callers use ---------------------------------------------------------------
    def watch(self, spec: str, *, check: Check | None = None) -> Watched:
        """Hold the secret ``spec`` names: ``env:``/``file:`` are read now, a Key Vault
        reference at :meth:`start` (or by :meth:`read`). ``check`` is called with each
        value before it is used (raising ConfigError refuses it). Raises ConfigError."""
        if not is_reference(spec):
            value = read_local(spec, self.environ, base_dir=self.base_dir)
            if check is not None:
                check(value)
            return Watched(spec, value)
        ref = parse_reference(spec)
        if self.vault is None:
            raise ConfigError(
                f"secret {spec}: Key Vault references need the runner's Azure identity, "
                "which this runner was built without"
            )
        self.vault.check_reference(ref)
        entry = self._entries.get(ref.source)
        if entry is None:
            entry = self._entries[ref.source] = _Entry(ref, Watched(ref.source))
        if check is not None:
            entry.checks.append(check)
            if entry.watched._value is not None:
                check(entry.watched._value)
        return entry.watched

    def watch_all(self, specs: Iterable[str], *, check: Check | None = None) -> list[Watched]:
        """:meth:`watch` each of ``specs`` (a rotation list)."""
        return [self.watch(spec, check=check) for spec in specs]

    async def read(self, spec: str) -> Secret:
        """The value of ``spec`` now, for a use that comes after start-up (a job's secret
        default): a reference is read at its first use, then kept fresh like the others."""
        watched = self.watch(spec)
        entry = self._entries.get(watched.source)
        if entry is not None and entry.read_at is None:
            await self._read(entry)
            if entry.failing is not None:
                raise SecretUnavailable(f"secret {entry.ref.source}: {entry.failing}")
            self._poke()
        return watched.current

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Read every reference watched so far, then keep them fresh. Raises
        SecretUnavailable naming each one that cannot be read, and why."""
        entries = list(self._entries.values())
        # One reference per vault first: the SDK's challenge (a 401 round trip) is then
        # cached for the vault, and the rest are read at once without one each.
        firsts = list({e.ref.vault_url: e for e in reversed(entries)}.values())
        await asyncio.gather(*(self._read(e) for e in firsts))
        await asyncio.gather(*(self._read(e) for e in entries if e not in firsts))
        failed = [e for e in entries if e.read_at is None]
        if failed:
            raise SecretUnavailable(
                "cannot start: "
                + "\n\n".join(f"secret {e.ref.source}: {e.failing}" for e in failed)
            )
        self._started = True
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def close(self) -> None:
        """Stop refreshing (the values stay as they are)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- refreshing ---------------------------------------------------------------------
    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _refresh_forever(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            due = [e for e in self._entries.values() if e.due <= now and e.read_at is not None]
            if due:
                await asyncio.gather(*(self._read(e) for e in due))
            upcoming = [e.due for e in self._entries.values() if e.read_at is not None]
            wait = max(0.0, min(upcoming, default=math.inf) - time.monotonic())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if wait == math.inf else wait)

    async def _read(self, entry: _Entry) -> None:
        """Read ``entry`` once; on failure keep what it had, and say so once."""
        assert self.vault is not None
        ok = False
        try:
            got = await self.vault.read_secret(entry.ref)
            if got.version != entry.version:
                value = Secret(got.value, source=entry.ref.source)
                for check in entry.checks:
                    check(value)
                self._take(entry, value, got.version)
            ok = True
        except RunnerError as exc:
            self._failed(entry, str(exc))
        except Exception as exc:  # a bug or an SDK surprise: the old value stays in use
            log.exception("secret %s: reading it failed", entry.ref.source)
            self._failed(entry, f"{type(exc).__name__}: {exc}")
        if self.observer is not None:
            self.observer.secret_read(entry.ref.vault, ok)
        if ok:
            if entry.failing is not None and entry.read_at is not None:
                log.info("secret %s: read again after failures", entry.ref.source)
            entry.failing = None
            entry.read_at = time.monotonic()
            entry.due = entry.read_at + self.refresh
        # With each read, not once the round's reads are all back: a value in use again
        # and the gauge saying so change together (a scrape between them saw it stale).
        if entry.read_at is not None:
            self._report_stale()

    def _take(self, entry: _Entry, value: Secret, version: str) -> None:
        if entry.version is not None:
            # Not the value, only its version: a rotation shows in the log.
            log.info(
                "secret %s: version %s in use (was %s)", entry.ref.source, version, entry.version
            )
        entry.watched._value = value
        entry.version = version

    def _failed(self, entry: _Entry, why: str) -> None:
        entry.due = time.monotonic() + self.retry
        if entry.read_at is None:
            entry.failing = why  # never read: start() reports it
            return
        if entry.failing is None:
            age = time.monotonic() - entry.read_at
            log.warning(
                "secret %s: cannot be read again (%s); the value read %.0f s ago stays in use "
                "until it can",
                entry.ref.source,
                why,
                age,
            )
        entry.failing = why

    def _report_stale(self) -> None:
        if self.observer is not None:
            stale = sum(1 for e in self._entries.values() if e.failing and e.read_at is not None)
            self.observer.secrets_stale(stale)

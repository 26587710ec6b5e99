"""The runtime: every part of one runner, built from settings, started and stopped as one.

    build(settings) ─► catalogue (job folders)          Runtime.start ─► store open
                     ─► store (unless one is given)                      secrets read
                     ─► extensions (Azure unless given)                  extensions start
                     ─► secret sources (Key Vault                        recovery, pruning
                        through the Azure extension)     Runtime.stop  ─► runs cancelled
                     ─► journal → executor → Runs                        and recorded,
                     ─► with --sandbox: the emulated                     secrets stop,
                        Azure in a thread, settings                      extensions close,
                        pointed at it                                    store close

The server's lifespan and ``runner run`` in a terminal share it, so both start and stop
the same way. Production differs from a sandbox run only in endpoints and CA: the sandbox
wiring produces the same settings a user would write for real Azure, plus the environment
variables azure-identity reads to find its endpoint (as the platform sets them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

from runner.admission import Rules
from runner.catalogue import Catalogue, folders
from runner.chat.setup import Chat
from runner.errors import RunnerError
from runner.executor import Executor
from runner.hooks import Extension, Extensions
from runner.journal import Journal
from runner.kinds import Host
from runner.kinds.script import base_env
from runner.kinds.spawner import Spawner
from runner.notify.base import Composer, Links
from runner.policy import Policies
from runner.secrets import SecretObserver, SecretSources, VaultReader
from runner.service import Runs
from runner.settings import Settings
from runner.statelock import StateLock
from runner.store import Store, store_for

log = logging.getLogger("runner.runtime")

PRUNE_EVERY = 3600.0
# azure-identity endpoint kinds in the sandbox, by the runner's identity setting.
_SANDBOX_KIND = {"managed": "imds", "workload": "workload", "default": "imds"}


class Runtime:
    """The parts of one runner; ``async with runtime:`` runs them."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        store: Store,
        extensions: Sequence[Extension] = (),
        *,
        environ: Mapping[str, str] | None = None,
        resources: contextlib.ExitStack | None = None,
        policies: Policies | None = None,
        links: Links | None = None,
        secrets: SecretSources | None = None,
    ) -> None:
        self.settings = settings
        # Where people open a run (chat and notices link to it): the server fills in its
        # address once bound, unless public_url says it.
        self.links = links or Links(settings.server.public_url or "")
        self.catalogue = catalogue
        self.store = store
        self.extensions = Extensions(extensions)
        self.journal = Journal(store, self.extensions)
        environ = os.environ if environ is None else environ
        #: Every secret source of this runner (webhooks, job defaults, chat, notifications):
        #: ``runtime.secrets.watch("keyvault:…")``; Key Vault through the Azure extension.
        #: ``build`` may make it first (``sources_for``) for parts built before the runtime.
        self.secrets = secrets or sources_for(settings, extensions, environ)
        #: Why :meth:`start` failed (a RunnerError in words), for the command line.
        self.start_error: RunnerError | None = None
        script_env = base_env(environ) | self.extensions.script_env()
        self.spawner = Spawner(settings.limits.kill_grace)
        host = Host(
            resources=self.extensions,
            script_env=script_env,
            masked=self.extensions.script_secrets(),
            kill_grace=settings.limits.kill_grace,
            drained=self.journal.drained,
            spawner=self.spawner,
            secrets=self.secrets,
        )
        self.executor = Executor(settings.limits, store, self.journal, host, self.extensions)
        policies = policies or Policies(settings.security.policies, [job.path for job in catalogue])
        self.runs = Runs(
            catalogue,
            self.executor,
            self.journal,
            store,
            Rules(settings.limits, script_env),
            policies,
            settings.limits.replay_ttl,
            secrets=self.secrets,
        )
        # The chat platforms a server answers (None: not serving, e.g. ``runner run``).
        self.chat: Chat | None = None
        # What lives as long as the runtime outside the event loop (the sandbox's thread).
        self.resources = resources or contextlib.ExitStack()
        self._pruner: asyncio.Task[None] | None = None

    def claim_state_dir(self, wait: float | None = None) -> None:
        """Be the one process of this state dir handing out lock keys, or raise ConfigError
        (see runner.statelock); the script spawner keeps the claim until the last script of
        this process is gone. ``wait``: how long for a dead server's scripts to end."""
        limits = self.settings.limits
        wait = limits.kill_grace + 10 if wait is None else wait
        lock = StateLock.claim(self.settings.server.state_dir, self.executor.owner, wait=wait)
        self.spawner.lock_fd = lock.fd
        self.resources.callback(lock.release)

    async def start(self, *, recover: bool = True) -> None:
        """Open the store, start the extensions; with ``recover``, take over the runs a
        stopped process left and keep the history pruned (``runner run`` does neither: a
        server may be running on the same state dir). Every secret reference is read
        before anything starts: one that cannot be read stops the start, in words."""
        await self.store.open()
        try:
            await self.secrets.start()
        except RunnerError as exc:
            self.start_error = exc
            await self.extensions.close()  # what the reads opened (Key Vault clients)
            await self.store.close()
            raise
        await self.extensions.start()
        self.spawner.start(warm=1)
        if recover:
            await self.executor.recover(self.runs.resubmit)
            self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())

    async def stop(self) -> None:
        """Cancel and record what still runs, then close extensions, store and resources."""
        if self._pruner is not None:
            self._pruner.cancel()
        try:
            await self.executor.close()
        finally:
            await self.spawner.close()
            await self.secrets.close()
            await self.extensions.close()
            await self.store.close()
            self.resources.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _prune_forever(self) -> None:
        days = self.settings.limits.retention_days
        while True:
            try:
                now, limits = time.time(), self.settings.limits
                removed = await self.store.prune(
                    now - days * 86400,
                    claims_before=now - limits.replay_ttl,
                    keep_bytes=limits.retention_bytes or None,
                )
            except Exception:
                log.exception("pruning old runs failed")
            else:
                if removed:
                    log.info("pruned %d runs older than %g days", removed, days)
            await asyncio.sleep(PRUNE_EVERY)


def build(
    settings: Settings,
    *,
    store: Store | None = None,
    extensions: Sequence[Extension] | None = None,
    serving: bool = False,
) -> Runtime:
    """Jobs, store and extensions from ``settings``; with ``settings.sandbox.enabled`` the
    emulated Azure starts first (in a thread) and the settings point at it.

    ``store`` and ``extensions`` replace the ones the settings name: tests pass a faulty
    store or a recording extension this way. ``serving`` (a server, not ``runner run``)
    adds the metrics and the rescans of the job folders. Raises RunnerError in words.
    """
    job_folders = folders(settings.server)
    catalogue = Catalogue.discover(job_folders)
    settings.server.state_dir.mkdir(parents=True, exist_ok=True)
    resources = contextlib.ExitStack()
    try:
        extras: list[Extension] = []
        metrics = None
        if serving:
            from runner.metrics import Metrics

            metrics = Metrics()
            extras.append(metrics)
            if settings.server.job_rescan > 0:
                from runner.reload import CatalogueWatcher

                extras.append(CatalogueWatcher(catalogue, job_folders, settings.server.job_rescan))
        if settings.sandbox.enabled:
            settings, scripts = _with_sandbox(settings, resources)
            extras.append(scripts)
        if extensions is None:
            from runner.azure import AzureExtension

            extensions = [AzureExtension(settings.azure, os.environ, observer=metrics)]
        store = store or store_for(settings)
        policies = Policies(settings.security.policies, [job.path for job in catalogue])
        links = Links(settings.server.public_url or "")
        sources = sources_for(settings, [*extensions, *extras], os.environ)
        chat = None
        if serving:
            from runner.chat import load as load_chat

            chat = load_chat(settings.chat, sources)
            extras.extend(_outbox(settings, store, policies, links, chat, sources))
        runtime = Runtime(
            settings,
            catalogue,
            store,
            [*extensions, *extras],
            resources=resources,
            policies=policies,
            links=links,
            secrets=sources,
        )
        runtime.chat = chat
        if metrics is not None:
            metrics.watch(runtime.runs.status)
        return runtime
    except BaseException:
        resources.close()
        raise


def _outbox(
    settings: Settings,
    store: Store,
    policies: Policies,
    links: Links,
    chat: Chat,
    sources: SecretSources,
) -> list[Extension]:
    """The outbox and its composers: notification URLs, Slack and Teams replies."""
    from runner.notify import Outbox
    from runner.notify.setup import webhook_notices

    composers: list[Composer] = []
    notices = webhook_notices(settings.notify, policies, links, sources)
    if notices is not None:
        composers.append(notices)
    composers.extend(chat.composers(links, settings.notify.notify_deadline))
    if not composers:
        return []
    n = settings.notify
    return [
        Outbox(
            store,
            composers,
            timeout=n.notify_timeout,
            backoff=n.notify_backoff,
            max_timeout=settings.limits.max_timeout,
        )
    ]


def sources_for(
    settings: Settings, extensions: Sequence[Extension], environ: Mapping[str, str]
) -> SecretSources:
    """The process's secret sources: Key Vault through the extension that reads it (the
    Azure one), reads counted by the one that observes them (metrics)."""
    return SecretSources(
        environ,
        vault=next((e for e in extensions if isinstance(e, VaultReader)), None),
        refresh=settings.security.secret_refresh,
        observer=next((e for e in extensions if isinstance(e, SecretObserver)), None),
    )


class SandboxScripts(Extension):
    """Under ``--sandbox``, scripts get what azure-cli needs to use the sandbox: its own
    config dir (the cloud registered and set), the CA, telemetry off and a proxy guard that
    refuses anything but loopback. Only scripts: the runner's own process is pointed at the
    sandbox by its settings."""

    name = "sandbox-scripts"

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def script_env(self) -> dict[str, str]:
        return dict(self.env)


def _with_sandbox(
    settings: Settings, stack: contextlib.ExitStack
) -> tuple[Settings, SandboxScripts]:
    """Start the sandbox in a thread (stopped when ``stack`` closes); settings pointing at
    it, and the extension giving scripts azure-cli's view of it."""
    from runner.sandbox import IDENTITY_ENV_VARS, Sandbox

    sandbox = Sandbox(settings.server.state_dir / "sandbox")
    stack.enter_context(sandbox.in_thread())
    if settings.sandbox.latency > 0:
        x = settings.sandbox.latency
        sandbox.controls.set_latency(
            {"Microsoft.Network/*": x, "Microsoft.Compute/virtualMachines": 5 * x}
        )
    # azure-identity reads its endpoint from the environment, as on Azure itself.
    saved = {name: os.environ.get(name) for name in IDENTITY_ENV_VARS}
    for name in IDENTITY_ENV_VARS:
        os.environ.pop(name, None)
    kind = _SANDBOX_KIND[settings.azure.identity]
    identity_env = sandbox.env(kind)
    os.environ.update(identity_env)
    stack.callback(_restore_environ, saved)
    az = {k: v for k, v in sandbox.az_env(kind).items() if k not in identity_env}
    azure = settings.azure
    pointed = azure.model_copy(
        update={
            "arm_endpoint": sandbox.arm_url,
            "arm_ca": sandbox.ca_path,
            "imds_endpoint": sandbox.identity_url,
            # Vault URLs keep their Azure form; their connections go to the sandbox.
            "keyvault_connect": sandbox.vault_address,
            "subscription_id": azure.subscription_id or sandbox.subscription_id,
            "location": azure.location or sandbox.world.location,
        }
    )
    return settings.model_copy(update={"azure": pointed}), SandboxScripts(az)


def _restore_environ(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

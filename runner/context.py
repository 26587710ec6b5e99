"""``ctx``: what a Python job gets from the runner.

Output lines, progress, cancellation, secrets by reference (``await ctx.secret(source)``,
masked in the run's output from then on), and what the runner's extensions lend jobs by
name — Azure among them: ``await ctx.azure()``. The job-facing types are declared here as
protocols (:class:`AzureView`), so that this module depends on no extension: the Azure
extension provides an object of that shape. Secret values are masked out of every line
before it is recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from runner.errors import ConfigError
from runner.output import split_lines
from runner.records import EV_ERROR, EV_OUTPUT, EV_STATUS, Trigger

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.secrets.aio import SecretClient
    from azure.mgmt.compute.aio import ComputeManagementClient
    from azure.mgmt.network.aio import NetworkManagementClient
    from azure.mgmt.resource.resources.aio import ResourceManagementClient


class IdentityView(Protocol):
    """Which identity the runner acts as (no secret in it)."""

    @property
    def kind(self) -> str: ...  # managed | workload | default
    @property
    def endpoint_kind(self) -> str: ...  # imds | app service | azure arc | workload | …
    @property
    def endpoint(self) -> str: ...
    @property
    def client_id(self) -> str | None: ...


class AzureView(Protocol):
    """What ``await ctx.azure()`` gives: shared by every run of the process."""

    @property
    def credential(self) -> AsyncTokenCredential: ...
    @property
    def resources(self) -> ResourceManagementClient: ...
    @property
    def network(self) -> NetworkManagementClient: ...
    @property
    def compute(self) -> ComputeManagementClient: ...
    @property
    def subscription_id(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def identity(self) -> IdentityView: ...
    @property
    def scope(self) -> str: ...  # what to ask tokens for: credential.get_token(az.scope)
    def secrets(self, vault: str) -> SecretClient:
        """Key Vault's async SecretClient for ``vault`` (a name or URL), shared."""
        ...


class SecretReader(Protocol):
    """Reads a secret source (``keyvault:…``, ``env:…``, ``file:…``): the runtime's."""

    async def read(self, spec: str) -> Any: ...  # a runner.secrets.Secret


class Lender(Protocol):
    """Who lends resources to jobs by name (the runner's extensions)."""

    async def resource(self, name: str, ctx: Any) -> Any: ...


class Written:
    """What ``ctx.print`` and ``ctx.error`` return: awaiting it waits until the store has
    caught up with the run's output (a job printing much should ``await ctx.print(…)``);
    not awaiting it is fine too."""

    __slots__ = ("_drained",)

    def __init__(self, drained: Callable[[], Awaitable[None]]) -> None:
        self._drained = drained

    def __await__(self) -> Generator[Any, None, None]:
        return self._drained().__await__()


async def _no_wait() -> None:
    return None


class Context:
    """Handed to ``run(ctx, …)``. One per run."""

    def __init__(
        self,
        *,
        run_id: str,
        job: str,
        params: Mapping[str, Any],
        sink: Callable[[str, str], None],
        mask: Callable[[str], str],
        resources: Lender,
        timeout: float,
        drained: Callable[[], Awaitable[None]] = _no_wait,
        secrets: SecretReader | None = None,
        trigger: Trigger | None = None,
    ) -> None:
        self.run_id = run_id
        self.job = job
        #: The run's parameters as recorded (secrets redacted).
        self.params = dict(params)
        #: Where the run came from: ``scheme`` (http, cli, web, github…), ``event``,
        #: ``delivery_id``, ``address`` and ``fields`` (the parameters runner.toml mapped
        #: from a webhook delivery). Never a secret, nor a sender's reply address.
        self.trigger = replace(trigger or Trigger(), reply={})
        self.timeout = timeout
        self._sink = sink
        self._mask = mask
        self._resources = resources
        self._written = Written(drained)
        self._secrets = secrets
        self.cancelled = asyncio.Event()

    def print(self, *parts: object, sep: str = " ") -> Written:
        """Write output lines (stdout). Several lines at once are split. ``await`` it to
        go no faster than the store."""
        for line in split_lines(self._mask(sep.join(str(p) for p in parts))):
            self._sink(EV_OUTPUT, line)
        return self._written

    def error(self, *parts: object, sep: str = " ") -> Written:
        """Write error lines (stderr)."""
        for line in split_lines(self._mask(sep.join(str(p) for p in parts))):
            self._sink(EV_ERROR, line)
        return self._written

    def progress(self, message: str, percent: float | None = None) -> None:
        """Report progress: a ``status`` event; text mode shows it as a ``runner:`` line."""
        body: dict[str, Any] = {"progress": self._mask(message)}
        if percent is not None:
            body["percent"] = max(0.0, min(100.0, float(percent)))
        self._sink(EV_STATUS, json.dumps(body))

    async def resource(self, name: str) -> Any:
        """What the extension ``name`` lends jobs (ConfigError when none is installed)."""
        return await self._resources.resource(name, self)

    async def secret(self, source: str) -> SecretStr:
        """The secret ``source`` names (``keyvault:https://…/secrets/NAME``, ``env:``,
        ``file:``), read by the runner and masked in this run's output from now on."""
        if self._secrets is None:
            raise ConfigError("this runner reads no secret sources for jobs")
        value = (await self._secrets.read(source)).reveal().decode()
        add = getattr(self._mask, "add", None)
        if add is not None:
            add(value)
        return SecretStr(value)

    async def azure(self) -> AzureView:
        """The shared Azure credential, ready ARM clients, subscription and location."""
        azure: AzureView = await self.resource("azure")
        return azure

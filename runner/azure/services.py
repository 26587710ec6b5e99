"""Azure as an extension of the runner: one credential, shared ARM clients, subscription
and location for every run; Key Vault secrets (for jobs and for the runner's own secret
references); words for Azure's failures; identity variables for scripts.

Built lazily on the first ``await ctx.azure()`` or Key Vault read (a runner that uses
neither never talks to an identity endpoint) and then shared by every run, so the
credential's token cache serves them all: one token request per token lifetime and
audience, not one per run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.azure import identity
from runner.azure.keyvault import KeyVault
from runner.errors import ConfigError
from runner.hooks import Extension
from runner.secrets import VaultRef, VaultSecret
from runner.settings import AzureSettings

if TYPE_CHECKING:
    # The SDKs take ~1 s to import: only a runner that runs an Azure job pays for it.
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.secrets.aio import SecretClient
    from azure.mgmt.compute.aio import ComputeManagementClient
    from azure.mgmt.network.aio import NetworkManagementClient
    from azure.mgmt.resource.resources.aio import ResourceManagementClient

    from runner.azure.telemetry import AzureObserver

IMDS_METADATA_VERSION = "2021-02-01"


@dataclass(frozen=True)
class Azure:
    """What a job gets from ``await ctx.azure()`` (a :class:`runner.context.AzureView`)."""

    credential: AsyncTokenCredential
    resources: ResourceManagementClient
    network: NetworkManagementClient
    compute: ComputeManagementClient
    subscription_id: str
    location: str
    identity: identity.IdentitySource
    #: the scope to ask tokens for (``credential.get_token(az.scope)``)
    scope: str
    keyvault: KeyVault

    def secrets(self, vault: str) -> SecretClient:
        """The shared async ``SecretClient`` of ``vault`` (its name, or its URL)."""
        return self.keyvault.client(vault)

    def __repr__(self) -> str:
        return f"Azure(subscription={self.subscription_id}, location={self.location})"


class AzureExtension(Extension):
    """Lends jobs :class:`Azure` as ``ctx.azure()``; reads Key Vault references for the
    runner (a :class:`runner.secrets.VaultReader`); explains Azure's failures."""

    name = "azure"

    def __init__(
        self,
        settings: AzureSettings,
        environ: Mapping[str, str] | None = None,
        observer: AzureObserver | None = None,
    ) -> None:
        self.settings = settings
        # Told of every ARM request and token acquisition (the metrics extension).
        self.observer = observer
        self.environ = dict(os.environ if environ is None else environ)
        self.source = identity.source(settings, self.environ)
        self._azure: Azure | None = None
        self._lock: asyncio.Lock | None = None
        self._session: Any = None
        self._credential: AsyncTokenCredential | None = None
        self.keyvault = KeyVault(settings, self.credential, self.source)

    def credential(self) -> AsyncTokenCredential:
        """The process's one credential, made on first use (ARM and Key Vault share it)."""
        if self._credential is None:
            credential = identity.make_credential(self.settings)
            if self.observer is not None:
                from runner.azure.telemetry import ObservedCredential

                credential = ObservedCredential(credential, self.observer)
            self._credential = credential
        return self._credential

    def check_reference(self, ref: VaultRef) -> None:
        self.keyvault.check_reference(ref)

    async def read_secret(self, ref: VaultRef) -> VaultSecret:
        return await self.keyvault.read_secret(ref)

    async def lend(self, ctx: Any) -> Azure:
        if self._azure is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._azure is None:
                    self._azure = await self._build()
        return self._azure

    async def _build(self) -> Azure:
        from azure.mgmt.compute.aio import ComputeManagementClient
        from azure.mgmt.network.aio import NetworkManagementClient
        from azure.mgmt.resource.resources.aio import ResourceManagementClient

        s = self.settings
        subscription, location = s.subscription_id, s.location
        if subscription is None or location is None:
            meta = await self._instance_metadata()
            subscription = subscription or meta.get("subscriptionId")
            location = location or meta.get("location")
        if not subscription or not location:
            raise ConfigError("the instance metadata has no subscription or location; set them")
        credential = self.credential()
        policies: list[Any] = []
        if self.observer is not None:
            from runner.azure.telemetry import ArmRequestPolicy

            policies.append(ArmRequestPolicy(self.observer))
        common: dict[str, Any] = {
            "base_url": s.arm_endpoint,
            "credential_scopes": [s.arm_audience.rstrip("/") + "/.default"],
            "polling_interval": s.arm_polling_interval,
            "retry_total": s.arm_retry_total,
            "transport": self._transport(),
            "per_retry_policies": policies,
        }
        return Azure(
            credential=credential,
            resources=ResourceManagementClient(credential, subscription, **common),
            network=NetworkManagementClient(credential, subscription, **common),
            compute=ComputeManagementClient(credential, subscription, **common),
            subscription_id=subscription,
            location=location,
            identity=self.source,
            scope=s.arm_audience.rstrip("/") + "/.default",
            keyvault=self.keyvault,
        )

    def _transport(self) -> Any:
        """One aiohttp session for the three clients, its TLS trust set once.

        Given ``connection_verify=<CA file>``, azure-core builds a new SSLContext for every
        request, which defeats aiohttp's connection pool: a CA load and a TLS handshake per
        ARM call (measured: ~3 ms of CPU each). A connector that owns the context keeps
        connections alive and reused.
        """
        import ssl

        import aiohttp
        from azure.core.pipeline.transport import AioHttpTransport

        context = ssl.create_default_context(
            cafile=str(self.settings.arm_ca) if self.settings.arm_ca is not None else None
        )
        # trust_env=False: the ARM endpoint is configured here, not by proxy variables.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=100), trust_env=False
        )
        return AioHttpTransport(session=self._session, session_owner=False)

    async def _instance_metadata(self) -> dict[str, Any]:
        """``compute`` of IMDS instance metadata: where the subscription comes from on a VM."""
        import aiohttp

        url = f"{self.settings.imds_endpoint.rstrip('/')}/metadata/instance"
        try:
            # trust_env=False: IMDS must never be reached through a proxy.
            async with (
                aiohttp.ClientSession(trust_env=False) as session,
                session.get(
                    url,
                    params={"api-version": IMDS_METADATA_VERSION},
                    headers={"Metadata": "true"},
                    timeout=aiohttp.ClientTimeout(total=3),
                ) as resp,
            ):
                resp.raise_for_status()
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"no subscription_id/location configured, and no Azure instance metadata at "
                f"{url} ({type(exc).__name__}: {exc}). Set subscription_id and location "
                f"(runner.toml, RUNNER_SUBSCRIPTION_ID, RUNNER_LOCATION), or run on an Azure VM."
            ) from None
        compute: dict[str, Any] = body.get("compute", {})
        return compute

    def explain(self, exc: BaseException) -> str | None:
        if not type(exc).__module__.startswith("azure."):
            return None
        from runner.azure import errors

        return errors.explain(exc, self.source)

    def script_env(self) -> dict[str, str]:
        """Identity variables for script jobs (so `az login --identity` works there too)."""
        env = {k: self.environ[k] for k in identity.IDENTITY_ENV if k in self.environ}
        if self.settings.subscription_id:
            env["AZURE_SUBSCRIPTION_ID"] = self.settings.subscription_id
        return env

    def script_secrets(self) -> list[str]:
        """The platform's identity secrets (App Service's header…): masked in every run."""
        return [self.environ[k] for k in identity.SECRET_ENV if self.environ.get(k)]

    async def close(self) -> None:
        if self._azure is not None:
            az, self._azure = self._azure, None
            for client in (az.resources, az.network, az.compute):
                await client.close()
        await self.keyvault.close()
        if self._credential is not None:
            credential, self._credential = self._credential, None
            await credential.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

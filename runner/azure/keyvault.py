"""Key Vault for the runner: secrets read with the process's one credential.

One ``SecretClient`` (``azure-keyvault-secrets``, async) per vault, all sharing the
credential and one aiohttp session, so a token for ``https://vault.azure.net`` is fetched
once per lifetime for every vault and every job. The SDK runs unmodified: the challenge
flow, and its check that the challenge's resource belongs to the vault's domain.

``keyvault_connect`` sends every Key Vault connection to one ``host:port`` whatever the
vault's name (curl's ``--connect-to``): how the sandbox serves real-looking vault URLs
from loopback. TLS still verifies the vault's own host name (against ``arm_ca``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runner.azure.identity import IdentitySource
from runner.errors import ConfigError
from runner.secrets import SecretUnavailable, VaultRef, VaultSecret
from runner.settings import AzureSettings

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.secrets.aio import SecretClient


def connect_address(spec: str) -> tuple[str, int]:
    """``host:port`` of ``keyvault_connect`` (``[::1]:8443`` for IPv6)."""
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"keyvault_connect must be host:port, not {spec!r}")
    return host.strip("[]"), int(port)


def resolver_to(address: tuple[str, int]) -> Any:
    """An aiohttp resolver that sends every host name to ``address`` (``keyvault_connect``)."""
    from aiohttp.abc import AbstractResolver

    class ConnectTo(AbstractResolver):
        """Every host name resolves to ``address``; TLS still checks the name asked for."""

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[Any]:
            ip, to = address
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            return [
                {"hostname": host, "host": ip, "port": to, "family": fam, "proto": 0,
                 "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}
            ]  # fmt: skip

        async def close(self) -> None:
            return None

    return ConnectTo()


class KeyVault:
    """Clients per vault, and the reads of secret references (with failures in words)."""

    def __init__(
        self,
        settings: AzureSettings,
        credential: Callable[[], AsyncTokenCredential],
        source: IdentitySource,
    ) -> None:
        self.settings = settings
        self._credential = credential
        self.source = source
        self._connect = (
            connect_address(settings.keyvault_connect) if settings.keyvault_connect else None
        )
        self._clients: dict[str, SecretClient] = {}
        self._session: aiohttp.ClientSession | None = None

    def vault_url(self, vault: str) -> str:
        """``https://<vault>.<suffix>`` for a vault's name; a URL is kept as given."""
        if vault.startswith("https://"):
            return vault.rstrip("/")
        if not re.fullmatch(r"[a-zA-Z](?:-?[a-zA-Z0-9]){2,23}", vault):
            raise ConfigError(f"{vault!r} is neither a Key Vault name nor an https:// URL")
        return f"https://{vault.lower()}.{self.settings.keyvault_dns_suffix}"

    def check_reference(self, ref: VaultRef) -> None:
        suffix = "." + self.settings.keyvault_dns_suffix.lower()
        if not ref.host.split(":")[0].endswith(suffix):
            raise ConfigError(
                f"secret {ref.source}: {ref.host} is not a Key Vault of this cloud "
                f"(*{suffix}); for another cloud set keyvault_dns_suffix"
            )

    def client(self, vault: str) -> SecretClient:
        """The shared async ``SecretClient`` of ``vault`` (a name or its URL)."""
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.keyvault.secrets.aio import SecretClient

        url = self.vault_url(vault)
        if url not in self._clients:
            transport = AioHttpTransport(session=self._shared_session(), session_owner=False)
            self._clients[url] = SecretClient(
                url,
                self._credential(),
                transport=transport,
                retry_total=self.settings.keyvault_retry_total,
                connection_timeout=10,
                read_timeout=30,
            )
        return self._clients[url]

    def _shared_session(self) -> aiohttp.ClientSession:
        import ssl

        import aiohttp

        if self._session is None:
            ca = self.settings.arm_ca
            context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
            resolver = resolver_to(self._connect) if self._connect else None
            # trust_env=False: Key Vault's address is configured here, not by proxy variables.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, resolver=resolver, limit=100),
                trust_env=False,
            )
        return self._session

    async def read_secret(self, ref: VaultRef) -> VaultSecret:
        """The value and version ``ref`` names now; SecretUnavailable says why not."""
        try:
            found = await self.client(ref.vault_url).get_secret(ref.name, ref.version)
        except ConfigError:
            raise
        except Exception as exc:
            from runner.azure.vault_errors import explain_read

            raise SecretUnavailable(explain_read(exc, ref, self.source)) from None
        if not found.value:
            raise SecretUnavailable(f"Key Vault {ref.vault} holds an empty value for {ref.name}")
        return VaultSecret(found.value, found.properties.version or "")

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

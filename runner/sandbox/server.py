"""``Sandbox``: start the emulated Azure on loopback and tell clients how to use it.

Three uvicorn servers run in the caller's event loop, on sockets bound here to 127.0.0.1
ports (ephemeral the first time, then the same for the same state directory):

    identity listener (http)   IMDS, App Service, Azure Arc           → identity_url
    ARM listener (https)       ARM, Entra ID token endpoint, /_sandbox → arm_url
    Key Vault listener (https) the secrets data plane of every vault,  → vault_address
                               by host name (<vault>.vault.azure.net)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from . import azcli, persist
from .admin import AdminApi
from .arm_app import ArmApp
from .certs import TlsFiles, ensure_tls_files
from .controls import Controls, ImdsMode
from .identity_app import ArcKeys, IdentityContext, build_identity_app, workload_token
from .listeners import Listener, bind
from .tokens import TokenIssuer
from .vault_app import VaultApp
from .vaults import SecretVersion
from .world import Identity, World

__all__ = ["IDENTITY_ENV_VARS", "KINDS", "Sandbox"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every variable that steers azure-identity's choice of endpoint: callers clear these
# before applying ``Sandbox.env(kind)`` so a stray one cannot pick another endpoint. The
# sandbox is a program of its own and imports nothing of the runner: this list is its own
# (a test checks that it covers every variable the runner passes on to script jobs).
IDENTITY_ENV_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    # Not endpoints, but other azure-identity credentials would act on them.
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
)
KINDS = ("imds", "imds-user", "appservice", "arc", "msi", "cloudshell", "workload")
ARC_KEY_DIR = Path("/var/opt/azcmagent/tokens")
# The vault every sandbox has: https://runner-sandbox.vault.azure.net
DEFAULT_VAULT = "runner-sandbox"


def _stable_uuid(name: str) -> str:
    # Stable ids across restarts: cached tokens and job settings stay valid.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://sandbox.runner.invalid/{name}"))


class Sandbox:
    """An emulated Azure on loopback: managed identity endpoints and ARM over HTTPS.

    ``await start()`` / ``await stop()`` in an event loop, or ``with sandbox.in_thread():``
    from synchronous code. Seeded with one subscription, a system-assigned identity and a
    user-assigned one (both Contributor on the subscription) and a workload identity app
    (Contributor too), and a Key Vault (``DEFAULT_VAULT``) whose secrets the three may
    read (Key Vault Secrets User on it).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        subscription_id: str | None = None,
        tenant_id: str | None = None,
        location: str = "westeurope",
        arc_key_dir: Path = ARC_KEY_DIR,
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.subscription_id = subscription_id or _stable_uuid("subscription")
        self.tenant_id = tenant_id or _stable_uuid("tenant")
        self.world = World(self.subscription_id, self.tenant_id, location)
        self.controls = Controls()
        self.issuer = TokenIssuer(state_dir / "token-signing.key", self.tenant_id)
        host_rg = f"/subscriptions/{self.subscription_id}/resourceGroups/sandbox-host"
        self.system_identity = self.world.add_identity(
            Identity(
                name="sandbox-vm",
                kind="system",
                principal_id=_stable_uuid("system/principal"),
                client_id=_stable_uuid("system/client"),
                resource_id=f"{host_rg}/providers/Microsoft.Compute/virtualMachines/sandbox-vm",
            )
        )
        self.user_identity = self.world.add_identity(
            Identity(
                name="sandbox-identity",
                kind="user",
                principal_id=_stable_uuid("user/principal"),
                client_id=_stable_uuid("user/client"),
                resource_id=(
                    f"{host_rg}/providers/Microsoft.ManagedIdentity/"
                    "userAssignedIdentities/sandbox-identity"
                ),
            )
        )
        self.workload_identity = self.world.add_identity(
            Identity(
                name="sandbox-workload",
                kind="workload",
                principal_id=_stable_uuid("workload/principal"),
                client_id=_stable_uuid("workload/client"),
                resource_id="",
            )
        )
        sub_scope = f"/subscriptions/{self.subscription_id}"
        self.vault = self.world.add_vault(DEFAULT_VAULT)
        for identity in (self.system_identity, self.user_identity, self.workload_identity):
            self.world.grant(identity.principal_id, "Contributor", sub_scope)
            self.world.grant(identity.principal_id, "Key Vault Secrets User", self.vault.scope())
        self.federated_token_path = state_dir / "federated-token"
        if not self.federated_token_path.exists():
            token, _, _ = self.issuer.issue(
                object_id="system:serviceaccount:default:runner",
                app_id=self.workload_identity.client_id,
                audience="api://AzureADTokenExchange",
            )
            self.federated_token_path.write_text(token, encoding="utf-8")
        self.arc_keys = ArcKeys(arc_key_dir)
        self._saved = persist.load(state_dir)
        self._identity_ctx = IdentityContext(
            world=self.world,
            controls=self.controls,
            issuer=self.issuer,
            app_service_secret=self._saved.app_service_secret,
            msi_secret=self._saved.msi_secret,
            federated_token=self.federated_token_path.read_text(encoding="utf-8").strip(),
            workload=self.workload_identity,
            arc_keys=self.arc_keys,
        )
        self.tls: TlsFiles | None = None
        self._arm: Listener | None = None
        self._identity: Listener | None = None
        self._identity_port: int | None = None
        self._vault: Listener | None = None
        self._vault_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Sandbox(state_dir={str(self.state_dir)!r}, arm_url={self._url('arm')!r})"

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind both listeners on 127.0.0.1 and serve them in the running loop."""
        self.tls = ensure_tls_files(self.state_dir)
        self._loop = asyncio.get_running_loop()
        admin = AdminApi(self.world, self.controls, self.set_imds_mode, self.set_vault_mode)
        arm_app = ArmApp(
            self.world, self.controls, self.issuer, workload_token(self._identity_ctx), admin
        )
        sock, self._saved = persist.bind_saved(self._saved, "arm")
        self._arm = Listener(arm_app, sock, self.tls)
        await self._arm.start()
        sock, self._saved = persist.bind_saved(self._saved, "identity")
        await self._start_identity(sock)
        sock, self._saved = persist.bind_saved(self._saved, "vault")
        await self._start_vault(sock)
        persist.save(self.state_dir, self._saved)
        # A ready-made azure-cli profile: scripts can `az login --identity` at once.
        azcli.write_config(self.az_config_dir, self.arm_url)
        log.info(
            "sandbox up: arm=%s identity=%s vault=%s",
            self.arm_url,
            self.identity_url,
            self.vault_address,
        )

    async def _start_identity(self, sock: Any) -> None:
        self._identity = Listener(build_identity_app(self._identity_ctx), sock, None)
        self._identity_port = self._identity.port
        await self._identity.start()

    async def _start_vault(self, sock: Any) -> None:
        self._vault = Listener(VaultApp(self.world, self.controls, self.issuer), sock, self.tls)
        self._vault_port = self._vault.port
        await self._vault.start()

    async def stop(self) -> None:
        """Stop serving (identity first, then Key Vault, then ARM); remove Arc key files."""
        if self._identity is not None:
            await self._identity.stop()
            self._identity = None
        if self._vault is not None:
            await self._vault.stop()
            self._vault = None
        if self._arm is not None:
            await self._arm.stop()
            self._arm = None
        self.arc_keys.cleanup()
        log.info("sandbox stopped")

    async def set_imds_mode(self, mode: ImdsMode) -> None:
        """Make the identity endpoints fail: ``error`` answers 500, ``refuse`` closes the port."""
        self.controls.imds_mode = mode
        if mode is ImdsMode.REFUSE and self._identity is not None:
            await self._identity.stop()
            self._identity = None
        elif mode is not ImdsMode.REFUSE and self._identity is None and self._identity_port:
            await self._start_identity(bind(self._identity_port))

    async def set_vault_mode(self, mode: ImdsMode) -> None:
        """A Key Vault outage: ``error`` answers 503, ``refuse`` closes its port."""
        self.controls.vault_mode = mode
        if mode is ImdsMode.REFUSE and self._vault is not None:
            await self._vault.stop()
            self._vault = None
        elif mode is not ImdsMode.REFUSE and self._vault is None and self._vault_port:
            await self._start_vault(bind(self._vault_port))

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[Sandbox]:
        """Run the sandbox in a background thread's event loop for the ``with`` block."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller's thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=main, name="sandbox", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        """Run a coroutine in the sandbox's loop from another thread (with ``in_thread``)."""
        if self._loop is None:
            raise RuntimeError("the sandbox is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- how to reach it ----------------------------------------------------------------
    def _url(self, which: str) -> str | None:
        if which == "arm":
            return f"https://127.0.0.1:{self._arm.port}" if self._arm else None
        return f"http://127.0.0.1:{self._identity_port}" if self._identity_port else None

    @property
    def arm_url(self) -> str:
        """Base URL of ARM (and of the Entra ID token endpoint): ``https://127.0.0.1:PORT``."""
        url = self._url("arm")
        if url is None:
            raise RuntimeError("the sandbox is not running")
        return url

    @property
    def identity_url(self) -> str:
        """Base URL of the IMDS / App Service / Arc endpoints: ``http://127.0.0.1:PORT``."""
        url = self._url("identity")
        if url is None:
            raise RuntimeError("the sandbox is not running")
        return url

    @property
    def vault_address(self) -> str:
        """``127.0.0.1:PORT``: where every vault's host name must connect to (the runner's
        ``keyvault_connect``; curl: ``--connect-to ::127.0.0.1:PORT``)."""
        if self._vault_port is None:
            raise RuntimeError("the sandbox is not running")
        return f"127.0.0.1:{self._vault_port}"

    @property
    def vault_url(self) -> str:
        """The URL of the sandbox's own vault: ``https://runner-sandbox.vault.azure.net``."""
        return self.vault.url

    def set_secret(self, name: str, value: str, vault: str | None = None) -> str:
        """Store a new version of secret ``name`` (in the default vault); its version id."""
        target = self.world.add_vault(vault) if vault else self.vault
        with self.world.lock:
            version: SecretVersion = target.set(name, value, int(time.time()))[1]
        return version.version

    def secret_reference(self, name: str, version: str | None = None) -> str:
        """``keyvault:https://runner-sandbox.vault.azure.net/secrets/NAME[/VERSION]``."""
        return f"keyvault:{self.vault.secret_id(name, version)}"

    @property
    def ca_path(self) -> Path:
        """The CA certificate to pass as ``connection_verify`` to clients and credentials."""
        if self.tls is None:
            raise RuntimeError("the sandbox is not running")
        return self.tls.ca

    def env(self, kind: str = "imds") -> dict[str, str]:
        """The environment variables that point azure-identity at this sandbox.

        ``kind``: ``imds`` (system-assigned), ``imds-user`` (user-assigned, by client id in
        ``AZURE_CLIENT_ID``, as DefaultAzureCredential reads it; pass it as ``client_id`` to
        ManagedIdentityCredential), ``appservice``, ``arc`` or ``workload``. Clear
        ``IDENTITY_ENV_VARS`` first.
        """
        base = self.identity_url
        if kind == "imds":
            return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": base}
        if kind == "imds-user":
            return {
                "AZURE_POD_IDENTITY_AUTHORITY_HOST": base,
                "AZURE_CLIENT_ID": self.user_identity.client_id,
            }
        if kind == "appservice":
            return {
                "IDENTITY_ENDPOINT": f"{base}/msi/token",
                "IDENTITY_HEADER": self._identity_ctx.app_service_secret,
            }
        if kind == "arc":
            return {
                "IDENTITY_ENDPOINT": f"{base}/arc/metadata/identity/oauth2/token",
                "IMDS_ENDPOINT": f"{base}/arc",
            }
        if kind == "msi":
            # Azure ML / older App Service style, which msal (az) and azure-identity read.
            return {
                "MSI_ENDPOINT": f"{base}/msi/secret/token",
                "MSI_SECRET": self._identity_ctx.msi_secret,
            }
        if kind == "cloudshell":
            return {"MSI_ENDPOINT": f"{base}/msi/cloudshell/token"}
        if kind == "workload":
            return {
                "AZURE_AUTHORITY_HOST": self.arm_url,
                "AZURE_TENANT_ID": self.tenant_id,
                "AZURE_CLIENT_ID": self.workload_identity.client_id,
                "AZURE_FEDERATED_TOKEN_FILE": str(self.federated_token_path),
            }
        raise ValueError(f"unknown identity kind {kind!r}; known: {', '.join(KINDS)}")

    @property
    def az_config_dir(self) -> Path:
        """An ``AZURE_CONFIG_DIR`` with the sandbox's cloud registered and active."""
        return self.state_dir / "azure-cli"

    def az_env(self, kind: str = "imds") -> dict[str, str]:
        """The environment for ``az`` (azure-cli) to use this sandbox, and only it.

        Its own ``AZURE_CONFIG_DIR`` (cloud registered and set), the CA, telemetry off,
        a proxy that refuses anything but loopback, and the identity variables of ``kind``.
        Clear ``IDENTITY_ENV_VARS`` first.
        """
        return azcli.environment(self.env(kind), self.ca_path, self.az_config_dir)

    def az_commands(self) -> list[list[str]]:
        """``az cloud register …`` and ``az cloud set …`` for another AZURE_CONFIG_DIR."""
        return azcli.commands(self.arm_url)

    def az_env_file(self, kind: str = "imds") -> str:
        """A shell file to ``source``: ``az_env`` exports and the cloud registration."""
        return azcli.env_file(self.az_env(kind), self.arm_url)

    def runner_env(self, kind: str = "imds") -> dict[str, str]:
        """Environment for a separate ``runner serve`` to use this sandbox: the identity
        variables of ``kind`` plus the runner's own settings (``RUNNER_*``), by name."""
        return {
            **self.env(kind),
            "RUNNER_IDENTITY": "workload" if kind == "workload" else "managed",
            "RUNNER_ARM_ENDPOINT": self.arm_url,
            "RUNNER_ARM_CA": str(self.ca_path),
            "RUNNER_IMDS_ENDPOINT": self.identity_url,
            "RUNNER_KEYVAULT_CONNECT": self.vault_address,
        }

    # -- roles --------------------------------------------------------------------------
    def grant(self, principal_id: str, role: str, scope: str | None = None) -> None:
        """Assign a built-in role (default scope: the subscription)."""
        self.world.grant(principal_id, role, scope or f"/subscriptions/{self.subscription_id}")

    def revoke(self, principal_id: str, role: str | None = None, scope: str | None = None) -> int:
        """Remove role assignments of a principal; returns how many were removed."""
        return self.world.revoke(principal_id, role, scope)

"""``Sandbox``: start the emulated Azure on loopback and tell clients how to use it.

Two uvicorn servers run in the caller's event loop, on sockets bound here to 127.0.0.1
ephemeral ports:

    identity listener (http)   IMDS, App Service, Azure Arc           → identity_url
    ARM listener (https)       ARM, Entra ID token endpoint, /_sandbox → arm_url
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from .admin import AdminApi
from .arm_app import ArmApp
from .certs import TlsFiles, ensure_tls_files
from .controls import Controls, ImdsMode
from .identity_app import ArcKeys, IdentityContext, build_identity_app, workload_token
from .tokens import TokenIssuer
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
KINDS = ("imds", "imds-user", "appservice", "arc", "workload")
ARC_KEY_DIR = Path("/var/opt/azcmagent/tokens")


def _stable_uuid(name: str) -> str:
    # Stable ids across restarts: cached tokens and job settings stay valid.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://sandbox.runner.invalid/{name}"))


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn does not set TCP_NODELAY on sockets it is handed; accepted sockets inherit
    # it from here. Without it delayed ACKs add ~40 ms per request (AZURE.md).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Listener:
    """One uvicorn server on one socket, started and stopped in the running loop."""

    def __init__(self, app: Any, sock: socket.socket, tls: TlsFiles | None) -> None:
        self.app, self.sock, self.tls = app, sock, tls
        self.port: int = sock.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(self.tls.cert) if self.tls else None,
            ssl_keyfile=str(self.tls.key) if self.tls else None,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                await self.task  # re-raise why it could not start
                raise RuntimeError("sandbox listener exited during start-up")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task
        self.server = self.task = None


class Sandbox:
    """An emulated Azure on loopback: managed identity endpoints and ARM over HTTPS.

    ``await start()`` / ``await stop()`` in an event loop, or ``with sandbox.in_thread():``
    from synchronous code. Seeded with one subscription, a system-assigned identity and a
    user-assigned one (both Contributor on the subscription) and a workload identity app
    (Contributor too).
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
        for identity in (self.system_identity, self.user_identity, self.workload_identity):
            self.world.grant(identity.principal_id, "Contributor", sub_scope)
        self.federated_token_path = state_dir / "federated-token"
        if not self.federated_token_path.exists():
            token, _, _ = self.issuer.issue(
                object_id="system:serviceaccount:default:runner",
                app_id=self.workload_identity.client_id,
                audience="api://AzureADTokenExchange",
            )
            self.federated_token_path.write_text(token, encoding="utf-8")
        self.arc_keys = ArcKeys(arc_key_dir)
        self._identity_ctx = IdentityContext(
            world=self.world,
            controls=self.controls,
            issuer=self.issuer,
            app_service_secret=secrets.token_urlsafe(24),
            federated_token=self.federated_token_path.read_text(encoding="utf-8").strip(),
            workload=self.workload_identity,
            arc_keys=self.arc_keys,
        )
        self.tls: TlsFiles | None = None
        self._arm: _Listener | None = None
        self._identity: _Listener | None = None
        self._identity_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Sandbox(state_dir={str(self.state_dir)!r}, arm_url={self._url('arm')!r})"

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind both listeners on 127.0.0.1 and serve them in the running loop."""
        self.tls = ensure_tls_files(self.state_dir)
        self._loop = asyncio.get_running_loop()
        admin = AdminApi(self.world, self.controls, self.set_imds_mode)
        arm_app = ArmApp(
            self.world, self.controls, self.issuer, workload_token(self._identity_ctx), admin
        )
        self._arm = _Listener(arm_app, _bind(), self.tls)
        await self._arm.start()
        await self._start_identity()
        log.info("sandbox up: arm=%s identity=%s", self.arm_url, self.identity_url)

    async def _start_identity(self, port: int = 0) -> None:
        sock = _bind() if not port else _bind_port(port)
        self._identity = _Listener(build_identity_app(self._identity_ctx), sock, None)
        self._identity_port = self._identity.port
        await self._identity.start()

    async def stop(self) -> None:
        """Stop serving (identity first, then ARM) and remove Arc key files."""
        if self._identity is not None:
            await self._identity.stop()
            self._identity = None
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
            await self._start_identity(self._identity_port)

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
        if kind == "workload":
            return {
                "AZURE_AUTHORITY_HOST": self.arm_url,
                "AZURE_TENANT_ID": self.tenant_id,
                "AZURE_CLIENT_ID": self.workload_identity.client_id,
                "AZURE_FEDERATED_TOKEN_FILE": str(self.federated_token_path),
            }
        raise ValueError(f"unknown identity kind {kind!r}; known: {', '.join(KINDS)}")

    def runner_env(self, kind: str = "imds") -> dict[str, str]:
        """Environment for a separate ``runner serve`` to use this sandbox: the identity
        variables of ``kind`` plus the runner's own settings (``RUNNER_*``), by name."""
        return {
            **self.env(kind),
            "RUNNER_IDENTITY": "workload" if kind == "workload" else "managed",
            "RUNNER_ARM_ENDPOINT": self.arm_url,
            "RUNNER_ARM_CA": str(self.ca_path),
            "RUNNER_IMDS_ENDPOINT": self.identity_url,
            "RUNNER_ARM_POLLING_INTERVAL": "0.1",
        }

    # -- roles --------------------------------------------------------------------------
    def grant(self, principal_id: str, role: str, scope: str | None = None) -> None:
        """Assign a built-in role (default scope: the subscription)."""
        self.world.grant(principal_id, role, scope or f"/subscriptions/{self.subscription_id}")

    def revoke(self, principal_id: str, role: str | None = None, scope: str | None = None) -> int:
        """Remove role assignments of a principal; returns how many were removed."""
        return self.world.revoke(principal_id, role, scope)


def _bind_port(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock

"""Fixtures: a fresh sandbox per test (in a background thread) and SDK client factories."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.network.aio import NetworkManagementClient
from azure.mgmt.resource.deployments.aio import DeploymentsMgmtClient
from azure.mgmt.resource.resources.aio import ResourceManagementClient

from runner.sandbox import IDENTITY_ENV_VARS, Sandbox

ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def use_identity(monkeypatch, sandbox) -> Callable[[str], dict[str, str]]:
    """Point azure-identity at the sandbox for one identity kind (clearing stray variables)."""

    def use(kind: str) -> dict[str, str]:
        for name in IDENTITY_ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        env = sandbox.env(kind)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return env

    return use


class Clients:
    """The async mgmt clients sharing one credential."""

    def __init__(self, sandbox: Sandbox, credential, **kwargs) -> None:
        common = {
            "base_url": sandbox.arm_url,
            "credential_scopes": [ARM_SCOPE],
            "connection_verify": str(sandbox.ca_path),
            # No polling_interval: the SDK default (30 s) is overridden by Retry-After.
            **kwargs,
        }
        sub = sandbox.subscription_id
        self.resource = ResourceManagementClient(credential, sub, **common)
        self.network = NetworkManagementClient(credential, sub, **common)
        self.compute = ComputeManagementClient(credential, sub, **common)
        self.deployments = DeploymentsMgmtClient(credential, sub, **common)

    async def close(self) -> None:
        await self.deployments.close()
        await self.resource.close()
        await self.network.close()
        await self.compute.close()


@pytest.fixture
def clients_factory(sandbox):
    """Build the three clients around a credential; closes them (and it) on exit."""

    @contextlib.asynccontextmanager
    async def make(credential, **kwargs) -> AsyncIterator[Clients]:
        clients = Clients(sandbox, credential, **kwargs)
        try:
            yield clients
        finally:
            await clients.close()
            await credential.close()

    return make

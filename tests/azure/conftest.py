"""Fixtures for Azure jobs end to end: the sandbox, and a runner pointed at it.

HTTP trigger → runner → real azure-identity and mgmt SDKs → sandbox over HTTPS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from runner.sandbox import IDENTITY_ENV_VARS, Sandbox
from tests.conftest import TEST_JOBS, Served

KIND_SETTINGS = {
    "imds": {"identity": "managed"},
    "appservice": {"identity": "managed"},
    "arc": {"identity": "managed"},
    "workload": {"identity": "workload"},
}


@dataclass
class AzureRig:
    """A runner server and the sandbox it deploys to."""

    srv: Served
    sandbox: Sandbox

    def resource_ids(self) -> set[str]:
        """Ids of every resource in the sandbox (lower-case, as ARM compares them)."""
        with self.sandbox.world.lock:
            return {k.lower() for k in self.sandbox.world.resources}


@pytest.fixture
def azure_rig(serve, sandbox, monkeypatch) -> Callable[..., AzureRig]:
    """Factory: a runner (built-in jobs + test jobs) whose identity and ARM are the sandbox.

    ``azure_rig(kind="imds", client_id=None, **settings)``; kind is one of
    imds, imds-user, appservice, arc, workload.
    """

    def start(kind: str = "imds", **overrides: Any) -> AzureRig:
        for name in IDENTITY_ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        for name, value in sandbox.env(kind).items():
            monkeypatch.setenv(name, value)
        settings: dict[str, Any] = {
            "builtin_jobs": True,
            "jobs": (TEST_JOBS,),
            "arm_endpoint": sandbox.arm_url,
            "arm_ca": sandbox.ca_path,
            "imds_endpoint": sandbox.identity_url,
            "arm_polling_interval": 0.0,
            **KIND_SETTINGS.get(kind, {"identity": "managed"}),
        }
        if kind == "imds-user":
            settings["client_id"] = sandbox.user_identity.client_id
        settings.update(overrides)
        return AzureRig(serve(**settings), sandbox)

    return start

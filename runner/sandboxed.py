"""``--sandbox``: the emulated Azure in this process, and settings that point at it.

Production differs from a sandbox run only in endpoints and CA: this module produces the
same Settings fields a user would write for real Azure, plus the environment variables
azure-identity reads to find its managed-identity endpoint (as the platform sets them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from runner.sandbox import IDENTITY_ENV_VARS, Sandbox
from runner.settings import Settings

# azure-identity endpoint kinds in the sandbox, by the runner's identity setting.
_KIND = {"managed": "imds", "workload": "workload", "default": "imds"}


def start(settings: Settings, stack: contextlib.ExitStack) -> tuple[Settings, Sandbox]:
    """Start the sandbox in a thread (stopped when ``stack`` closes); return new settings."""
    sandbox = Sandbox(settings.state_dir / "sandbox")
    stack.enter_context(sandbox.in_thread())
    if settings.sandbox_latency > 0:
        x = settings.sandbox_latency
        sandbox.controls.set_latency(
            {"Microsoft.Network/*": x, "Microsoft.Compute/virtualMachines": 5 * x}
        )
    # azure-identity reads its endpoint from the environment, as on Azure itself.
    saved = {name: os.environ.get(name) for name in IDENTITY_ENV_VARS}
    for name in IDENTITY_ENV_VARS:
        os.environ.pop(name, None)
    os.environ.update(sandbox.env(_KIND[settings.identity]))
    stack.callback(_restore, saved)
    pointed = dataclasses.replace(
        settings,
        arm_endpoint=sandbox.arm_url,
        arm_ca=sandbox.ca_path,
        imds_endpoint=sandbox.identity_url,
        subscription_id=settings.subscription_id or sandbox.subscription_id,
        location=settings.location or sandbox.world.location,
    )
    return pointed, sandbox


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

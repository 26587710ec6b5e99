"""The real azure-cli against the sandbox: its own virtualenv, and a guarded ``az`` runner.

``.venv-az`` is made on first use (pip's cache makes it ~1 min cold, seconds warm) from
``requirements.txt``. Every ``az`` runs with the sandbox's ``az_env``: its own
AZURE_CONFIG_DIR, the sandbox CA, telemetry off, and a proxy on 127.0.0.1:9 that refuses
anything not on loopback, so a request that would leave the machine fails loudly. HOME is
a temporary folder (``--generate-ssh-keys`` writes there, not in ~/.ssh).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import IDENTITY_ENV_VARS, Sandbox

ROOT = Path(__file__).parent.parent.parent
AZ_VENV = ROOT / ".venv-az"
AZ = AZ_VENV / "bin" / "az"
REQUIREMENTS = Path(__file__).parent / "requirements.txt"


def ensure_azure_cli() -> Path:
    """Install azure-cli into .venv-az unless the installed one matches requirements.txt."""
    stamp = AZ_VENV / ".installed"
    with open(ROOT / ".venv-az.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test workers must not install at once
        if stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text() and AZ.exists():
            return AZ
        subprocess.run([sys.executable, "-m", "venv", str(AZ_VENV)], check=True)
        subprocess.run(
            [str(AZ_VENV / "bin" / "pip"), "install", "--quiet", "-r", str(REQUIREMENTS)],
            check=True,
        )
        stamp.write_text(REQUIREMENTS.read_text())
    return AZ


@dataclasses.dataclass
class AzResult:
    """What one az command did."""

    args: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.stdout)


class Az:
    """Runs ``az`` against the sandbox with the guarded environment."""

    def __init__(self, sandbox: Sandbox, home: Path, kind: str = "imds") -> None:
        self.sandbox = sandbox
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": f"{AZ.parent}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            **sandbox.az_env(kind),
            # A profile of this test's own: the cloud is registered by the test itself.
            "AZURE_CONFIG_DIR": str(home / ".azure"),
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> AzResult:
        started = time.monotonic()
        proc = subprocess.run(
            [str(AZ), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        result = AzResult(
            list(args), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started
        )
        if check:
            assert result.code == 0, f"az {' '.join(args)} → {result.code}\n{result.stderr}"
        return result

    def login(self, *extra: str) -> AzResult:
        """Register the sandbox's cloud (the printed commands, as a user runs them), log in."""
        for command in self.sandbox.az_commands():
            assert command[0] == "az"
            self(*command[1:])
        return self("login", "--identity", *extra, "-o", "json")


@pytest.fixture(scope="session")
def azure_cli() -> Path:
    """The az executable of .venv-az (installed on first use)."""
    return ensure_azure_cli()


@pytest.fixture
def az_factory(azure_cli, sandbox, tmp_path) -> Iterator[Callable[..., Az]]:
    """Factory: an ``Az`` for an identity kind, with the identity variables cleared first."""
    made: list[Az] = []

    def make(kind: str = "imds") -> Az:
        az = Az(sandbox, tmp_path / f"home{len(made)}", kind)
        for name in IDENTITY_ENV_VARS:
            assert name not in az.env or name in sandbox.env(kind)
        made.append(az)
        return az

    yield make


def base_env() -> dict[str, str]:
    """What a process needs beyond the sandbox's variables (no proxy or CA of the host)."""
    return {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}

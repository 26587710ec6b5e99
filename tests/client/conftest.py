"""Fixtures for the client: ``runner call`` as a real process, through a cutting proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.proxy import CuttingProxy
from tests.conftest import ROOT, Served


def client_env(srv: Served, port: int | None = None, **extra: str) -> dict[str, str]:
    """The environment a CI step would give the client: the server URL and CA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    url = srv.url if port is None else f"https://127.0.0.1:{port}"
    env.update(RUNNER_URL=url, RUNNER_CACERT=str(srv.cacert), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


@pytest.fixture
def proxy() -> Iterator[Callable[..., CuttingProxy]]:
    """Factory: a cutting proxy in front of a server (``proxy(srv, cut_after=2000)``)."""
    stack: list[Any] = []

    def start(srv: Served, **cut: Any) -> CuttingProxy:
        port = int(srv.url.rsplit(":", 1)[1])
        running = CuttingProxy(port, **cut).running()
        stack.append(running)
        return running.__enter__()

    yield start
    for running in reversed(stack):
        running.__exit__(None, None, None)


def call_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", "call", *args]


@pytest.fixture
def call(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Factory: ``runner call ARGS`` against a server (or a proxy port), to its end."""

    def run(srv: Served, *args: str, port: int | None = None, timeout: float = 60, **env: str):
        return subprocess.run(
            call_cmd(*args), capture_output=True, text=True, cwd=tmp_path,
            env=client_env(srv, port, **env), timeout=timeout, check=False,
        )  # fmt: skip

    return run

"""The store contract harness: every case runs in one event loop per test (anyio), against
every backend registered in :data:`BACKENDS`. A new backend adds one factory here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from runner.store import SQLiteStore, Store

# name -> async factory of a fresh, unopened store (the harness opens and closes it).
Factory = Callable[[Path], Awaitable[Store]]


async def _sqlite(tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "runs.db")


BACKENDS: dict[str, Factory] = {"sqlite": _sqlite}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each backend, opened on a fresh database, in the test's own event loop."""
    backend = await BACKENDS[request.param](tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()

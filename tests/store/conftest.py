"""The store contract harness: every case runs in one event loop per test (anyio), against
every backend registered in :data:`BACKENDS`. A new backend adds one factory here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from runner.store import SQLiteStore, Store
from runner.store.postgres import PostgresStore

# name -> async factory of a fresh, unopened store (the harness opens and closes it).
Factory = Callable[[pytest.FixtureRequest, Path], Awaitable[Store]]


async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "runs.db")


async def _postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh database on the session's throwaway PostgreSQL (tests/pgcluster.py)."""
    return PostgresStore(request.getfixturevalue("pg_database"))


BACKENDS: dict[str, Factory] = {"sqlite": _sqlite, "postgresql": _postgresql}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each backend, opened on a fresh database, in the test's own event loop."""
    backend = await BACKENDS[request.param](request, tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()

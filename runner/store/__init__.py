"""Where runs and events live, behind one small interface (:class:`Store`).

Embedded default: SQLite in the state directory; PostgreSQL (``store = "postgresql://…"``)
for replicas. Every backend must pass the contract suite in ``tests/store/``;
:func:`store_for` picks the backend from the settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runner.settings import Settings
from runner.store.base import Store
from runner.store.sqlite import SQLiteStore


def store_for(settings: Settings, password: Callable[[], Awaitable[str]] | None = None) -> Store:
    """The store the settings name (not opened yet): SQLite in the state directory (or
    ``sqlite:PATH``), or PostgreSQL (``password``: asked at each new connection)."""
    if settings.store.backend == "postgresql":
        from runner.store.postgres import PostgresStore

        return PostgresStore(
            settings.store.url, password=password, pool_size=settings.store.pool_size
        )
    return SQLiteStore(settings.db_path)


__all__ = ["SQLiteStore", "Store", "store_for"]

"""Where runs and events live, behind one small interface (:class:`Store`).

Embedded default: SQLite in the state directory. Every backend must pass the contract
suite in ``tests/store/``; :func:`open_store` picks the backend from the settings.
"""

from __future__ import annotations

from runner.settings import Settings
from runner.store.base import Store
from runner.store.sqlite import SQLiteStore


def store_for(settings: Settings) -> Store:
    """The store the settings name (not opened yet): SQLite in the state directory."""
    return SQLiteStore(settings.db_path)


__all__ = ["SQLiteStore", "Store", "store_for"]

"""Where runs and events live, behind one small interface (:class:`Store`).

Embedded default: SQLite in the state directory. Every backend must pass
``tests/store/test_contract.py``.
"""

from runner.store.base import Store
from runner.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store"]

"""runner: a webhook-driven deployment runner.

Jobs live at URL paths; a POST starts a run whose output streams back live and is
recorded in a durable history. What a Python job imports comes from here::

    from runner import Context, JobError, Param, Secret

(loaded on first use, so that ``import runner.sandbox`` — a program of its own — and the
command line's start-up do not pay for it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from runner.context import Context
    from runner.errors import JobError
    from runner.params import Param, Secret

_EXPORTS = {
    "Context": "runner.context",
    "JobError": "runner.errors",
    "Param": "runner.params",
    "Secret": "runner.params",
}
__all__ = ["Context", "JobError", "Param", "Secret", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runner' has no attribute {name!r}")

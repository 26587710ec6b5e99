"""The kinds of job, as types (see :mod:`runner.kinds.base`). A new kind is one new class
in its own module, added to :data:`KINDS`; nothing else in the runner asks which kind a job
is."""

from __future__ import annotations

from runner.kinds.base import Admitted, Host, Job, Sink, Submission, lock_fields
from runner.kinds.python import PythonJob
from runner.kinds.script import ScriptJob

# Asked in order which of them claims a file.
KINDS: tuple[type[Job], ...] = (PythonJob, ScriptJob)

__all__ = [
    "KINDS",
    "Admitted",
    "Host",
    "Job",
    "PythonJob",
    "ScriptJob",
    "Sink",
    "Submission",
    "lock_fields",
]

"""The job SDK under its first name: ``from runner.api import Context, Param, Secret,
JobError`` keeps working for jobs written before ``from runner import …``."""

from runner import Context, JobError, Param, Secret

__all__ = ["Context", "JobError", "Param", "Secret"]

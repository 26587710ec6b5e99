"""What a Python job imports: ``from runner.api import Context, Param, Secret, JobError``.

``Param`` is pydantic's ``Field`` (pattern, ge/le, min_length/max_length, description);
``Secret`` is pydantic's ``SecretStr``: never recorded, logged, streamed or shown, and read
with ``.get_secret_value()``.
"""

from pydantic import Field as Param
from pydantic import SecretStr as Secret

from runner.context import Context
from runner.errors import JobError

__all__ = ["Context", "JobError", "Param", "Secret"]

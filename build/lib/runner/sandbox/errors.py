"""ARM-shaped errors raised by the sandbox's handlers.

ArmError                 any failure answered as {"error": {"code", "message"}}
├── BadRequest           400: invalid names, bad references, immutable properties
├── Unauthorized         401: missing, foreign or expired bearer token
├── Forbidden            403: AuthorizationFailed (no role covers the action)
├── NotFound             404: ResourceGroupNotFound, ParentResourceNotFound, …
├── Conflict             409: resource busy
└── Throttled            429: injected throttling, with Retry-After
"""

from __future__ import annotations

__all__ = [
    "ArmError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Throttled",
    "Unauthorized",
]


class ArmError(Exception):
    """An error that the ARM emulator answers with ``status`` and an ARM error body."""

    status = 500

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        if status is not None:
            self.status = status

    def body(self) -> dict[str, dict[str, str]]:
        """The JSON body ARM sends for this error."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ArmError):
    status = 400


class Unauthorized(ArmError):
    status = 401


class Forbidden(ArmError):
    status = 403


class NotFound(ArmError):
    status = 404


class Conflict(ArmError):
    status = 409


class Throttled(ArmError):
    status = 429

    def __init__(self, code: str, message: str, *, retry_after: int) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after

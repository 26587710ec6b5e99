"""Why a webhook delivery was refused, as one small branch of the runner's error tree.

The sender reached us but did not prove it holds the job's secret: a refusal of the
Forbidden kind (the HTTP layer answers 403, see ``runner.web.problems``).

::

    RunnerError
    └── Refused
        └── Forbidden
            └── SignatureError      reason:
                ├── MissingHeader   "missing_header"    a header the scheme needs is absent
                ├── MalformedHeader "malformed_header"  present but not in its format
                ├── BadSignature    "bad_signature"     well-formed, no secret matches
                └── StaleTimestamp  "stale_timestamp"   signed too long ago, or in the future

Messages are written for the sender's administrator (which header, which setting, whose
clock) and never contain a secret, nor a header that might hold one (``X-Gitlab-Token``,
``Authorization``).
"""

from __future__ import annotations

from typing import ClassVar

from runner.errors import Forbidden


class SignatureError(Forbidden):
    """A delivery that does not prove it comes from the configured sender."""

    reason: ClassVar[str] = "bad_signature"

    def __init__(self, scheme: str, detail: str) -> None:
        self.scheme = scheme
        super().__init__(f"{scheme} webhook refused: {detail}")


class MissingHeader(SignatureError):
    """A header the scheme requires is absent."""

    reason = "missing_header"


class MalformedHeader(SignatureError):
    """A header is present but not in the scheme's documented format."""

    reason = "malformed_header"


class BadSignature(SignatureError):
    """The signature or token is well-formed but matches none of the job's secrets."""

    reason = "bad_signature"


class StaleTimestamp(SignatureError):
    """The signed timestamp is outside the tolerance window (a replay, or a wrong clock).

    ``skew`` is the timestamp minus our clock, in seconds: negative when too old.
    """

    reason = "stale_timestamp"

    def __init__(self, scheme: str, detail: str, *, skew: float) -> None:
        self.skew = skew
        super().__init__(scheme, detail)

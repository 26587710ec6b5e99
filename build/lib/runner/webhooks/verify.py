"""One entry point for every scheme: ``verify(scheme, secret, headers, body, now=…)``.

Pure: no I/O, no framework, the clock passed in. The HTTP layer calls it with the raw
body bytes before anything parses them, and :func:`check_secret` at start-up so that a
secret of the wrong form is a configuration error, not a 500 on the first delivery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from runner.errors import ConfigError
from runner.webhooks._checks import lower
from runner.webhooks.delivery import Delivery
from runner.webhooks.github import verify_github
from runner.webhooks.gitlab import is_signing_token, verify_gitlab
from runner.webhooks.secret import Secret
from runner.webhooks.slack import verify_slack
from runner.webhooks.standard import signing_key, verify_standard
from runner.webhooks.teams import teams_key, verify_teams

# Slack's and Standard Webhooks' tolerance, used for every scheme that signs a time.
DEFAULT_WINDOW: Final = 300.0


class Verifier(Protocol):
    """A scheme's check, given lower-cased headers and at least one secret."""

    def __call__(
        self,
        secrets: Sequence[Secret],
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        window: float,
    ) -> Delivery: ...


VERIFIERS: Final[Mapping[str, Verifier]] = {
    "github": verify_github,
    "gitlab": verify_gitlab,
    "slack": verify_slack,
    "teams": verify_teams,
    "standard": verify_standard,
}
SCHEMES: Final = tuple(VERIFIERS)


def verify(
    scheme: str,
    secret: Secret | Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window: float = DEFAULT_WINDOW,
) -> Delivery:
    """Check that ``body`` was sent by the holder of ``secret``, or raise SignatureError.

    ``secret`` may be several secrets (during a rotation any one may match). ``headers``
    may be any mapping, case-insensitive or not; ``now`` is Unix time in seconds.
    A misconfigured scheme or secret raises :class:`ConfigError`.
    """
    secrets = _secrets(scheme, secret)
    return VERIFIERS[scheme](secrets, lower(headers), body, now=now, window=window)


def check_secret(scheme: str, secret: Secret | Sequence[Secret]) -> None:
    """Raise :class:`ConfigError` if ``secret`` cannot serve ``scheme`` (call at start-up)."""
    for s in _secrets(scheme, secret):
        if scheme == "standard" or (scheme == "gitlab" and is_signing_token(s)):
            signing_key(s)
        elif scheme == "teams":
            teams_key(s)


def _secrets(scheme: str, secret: Secret | Sequence[Secret]) -> tuple[Secret, ...]:
    if scheme not in VERIFIERS:
        raise ConfigError(f"unknown webhook scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    secrets = (secret,) if isinstance(secret, Secret) else tuple(secret)
    if not secrets:
        raise ConfigError(f"a {scheme} webhook needs at least one secret")
    return secrets

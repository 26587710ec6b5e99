"""GitLab: the ``X-Gitlab-Token`` secret token, and the Standard-Webhooks signing token.

https://docs.gitlab.com/user/project/integrations/webhooks/. A job's GitLab secrets are
told apart by form: a ``whsec_…`` secret is a signing token (GitLab then sends
``webhook-id``/``webhook-timestamp``/``webhook-signature``), any other is the plain secret
token. Every kind configured is required, so a captured ``X-Gitlab-Token`` alone cannot
stand in for a signature the job expects (a downgrade).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from runner.webhooks._checks import any_equal, delivery_id, header_bytes, require, sources
from runner.webhooks.delivery import Delivery
from runner.webhooks.errors import BadSignature
from runner.webhooks.secret import Secret
from runner.webhooks.standard import PREFIX, verify_standard

_SETTINGS = "the project's Settings → Webhooks"


def is_signing_token(secret: Secret) -> bool:
    """True for a ``whsec_`` secret: GitLab's signing token rather than its secret token."""
    return secret.reveal().startswith(PREFIX)


def verify_gitlab(
    secrets: Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window: float,
) -> Delivery:
    """Verify a GitLab delivery (``headers`` with lower-case names)."""
    signing = [s for s in secrets if is_signing_token(s)]
    tokens = [s for s in secrets if not is_signing_token(s)]
    timestamp: float | None = None
    if signing:
        signed = verify_standard(
            signing, headers, body, now=now, window=window, scheme="gitlab", where=_SETTINGS
        )
        timestamp = signed.timestamp
    if tokens:
        hint = f": set the secret token in {_SETTINGS}"
        got = header_bytes(require(headers, "X-Gitlab-Token", "gitlab", hint))
        # Compared as digests: equal lengths, so the timing does not even tell the length.
        digests = (hashlib.sha256(s.reveal()).digest() for s in tokens)
        if not any_equal(digests, [hashlib.sha256(got).digest()]):
            # Never quote the token received: it may be this job's previous secret.
            raise BadSignature(
                "gitlab",
                f"X-Gitlab-Token is not this job's secret token ({sources(tokens)}): "
                f"set the same value in {_SETTINGS}",
            )
    # Idempotency-Key (= webhook-id) stays the same across GitLab's retries of a delivery.
    for name in ("Idempotency-Key", "webhook-id", "X-Gitlab-Event-UUID"):
        found = delivery_id(headers.get(name.lower()), name, "gitlab")
        if found is not None:
            break
    return Delivery(
        scheme="gitlab",
        delivery_id=found,
        timestamp=timestamp,
        event=headers.get("x-gitlab-event"),
    )

"""GitHub: ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body.

https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries.
GitHub signs no timestamp, so a captured delivery verifies forever: the replay guard,
keyed by ``X-GitHub-Delivery`` (kept by GitHub's own redeliveries), is the only defence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from runner.webhooks._checks import any_equal, bad_signature, delivery_id, hmac_sha256
from runner.webhooks.delivery import Delivery
from runner.webhooks.errors import MalformedHeader, MissingHeader
from runner.webhooks.secret import Secret

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_SETTINGS = "the webhook's settings on GitHub (Settings → Webhooks → Secret)"


def verify_github(
    secrets: Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window: float,
) -> Delivery:
    """Verify a GitHub delivery (``headers`` with lower-case names; no clock involved)."""
    value = headers.get("x-hub-signature-256")
    if value is None:
        if "x-hub-signature" in headers:
            # Only the legacy SHA-1 header: a very old GitHub Enterprise, or a proxy that
            # drops unknown headers. SHA-1 is not accepted.
            raise MissingHeader(
                "github",
                "the X-Hub-Signature-256 header is missing (only the SHA-1 X-Hub-Signature "
                "came, which is not accepted): use a GitHub version that sends SHA-256",
            )
        raise MissingHeader(
            "github",
            f"the X-Hub-Signature-256 header is missing: set a secret in {_SETTINGS}",
        )
    found = _SIGNATURE.fullmatch(value.strip())
    if found is None:
        raise MalformedHeader(
            "github", "the X-Hub-Signature-256 header must be 'sha256=' and 64 hex digits"
        )
    received = bytes.fromhex(found.group(1))
    expected = [hmac_sha256(s.reveal(), body) for s in secrets]
    if not any_equal(expected, [received]):
        raise bad_signature("github", "X-Hub-Signature-256", secrets, _SETTINGS)
    event = headers.get("x-github-event")
    return Delivery(
        scheme="github",
        delivery_id=delivery_id(headers.get("x-github-delivery"), "X-GitHub-Delivery", "github"),
        timestamp=None,
        event=event,
        # GitHub's first delivery to a new hook: answered so GitHub shows it green.
        kind="ping" if event == "ping" else "run",
    )

"""Microsoft Teams outgoing webhooks: ``Authorization: HMAC <base64>``.

https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-outgoing-webhook.
The value is the base64 HMAC-SHA256 of the body, keyed with the base64-decoded security
token Teams shows once when the webhook is created. Teams signs no timestamp header, but
the signed body is a Bot Framework activity whose ``timestamp`` and ``id`` we use, after
verification, for the time window and the replay guard.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import datetime

from runner.webhooks._checks import (
    any_equal,
    bad_signature,
    check_window,
    delivery_id,
    hmac_sha256,
    json_object,
    require,
)
from runner.webhooks.delivery import Delivery
from runner.webhooks.errors import MalformedHeader
from runner.webhooks.secret import Secret, base64_key

_SETTINGS = "the team's Apps → Manage → outgoing webhook (its security token)"


def teams_key(secret: Secret) -> bytes:
    """The HMAC key: the security token is base64; :class:`ConfigError` if it is not."""
    what = "a Teams security token is base64, as Teams shows it"
    return base64_key(secret, secret.reveal().strip(), what=what)


def verify_teams(
    secrets: Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window: float,
) -> Delivery:
    """Verify a Teams outgoing-webhook request (``headers`` with lower-case names)."""
    value = require(headers, "Authorization", "teams")
    scheme, _, token = value.partition(" ")
    malformed = MalformedHeader("teams", "the Authorization header must be 'HMAC <base64>'")
    if scheme.upper() != "HMAC":
        raise malformed
    try:
        received = base64.b64decode(token.strip(), validate=True)
    except binascii.Error:
        raise malformed from None
    if not received:
        raise malformed
    expected = [hmac_sha256(teams_key(s), body) for s in secrets]
    if not any_equal(expected, [received]):
        raise bad_signature("teams", "the Authorization HMAC", secrets, _SETTINGS)
    activity = json_object(body) or {}
    sent = _timestamp(activity.get("timestamp"))
    if sent is not None:
        check_window("teams", sent, now=now, window=window)
    ident = activity.get("id")
    kind = activity.get("type")
    return Delivery(
        scheme="teams",
        delivery_id=delivery_id(ident if isinstance(ident, str) else None, "id", "teams"),
        timestamp=sent,
        event=kind if isinstance(kind, str) else None,
    )


def _timestamp(value: object) -> float | None:
    """An activity's ISO 8601 ``timestamp`` (e.g. ``2017-05-24T17:39:56.5962587Z``)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None

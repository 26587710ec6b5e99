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
from datetime import UTC, datetime

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
    # Teams signs no header but the body: the activity's own time is the only window
    # there is, so an activity without one is refused rather than let through timeless.
    sent = _timestamp(activity.get("timestamp"))
    check_window("teams", sent, now=now, window=window)
    ident = activity.get("id")
    kind = activity.get("type")
    # Without an id, the signature stands for the delivery: a copy of it is a replay.
    given = delivery_id(ident if isinstance(ident, str) else None, "id", "teams")
    return Delivery(
        scheme="teams",
        delivery_id=given or f"hmac={token.strip()}",
        timestamp=sent,
        event=kind if isinstance(kind, str) else None,
    )


def _timestamp(value: object) -> float:
    """An activity's ISO 8601 ``timestamp`` (e.g. ``2017-05-24T17:39:56.5962587Z``); one
    without a zone is read as UTC, as Teams writes its times."""
    if not isinstance(value, str):
        raise MalformedHeader("teams", "the activity has no timestamp to check its age by")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedHeader("teams", "the activity's timestamp is not ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

"""Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md.
The signed content is ``{id}.{timestamp}.{body}``; the key is the base64 after ``whsec_``;
the header lists space-separated ``v1,<base64>`` signatures, any of which may match (the
sender signs with old and new keys while rotating). Also used by GitLab's signing token.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from runner.webhooks._checks import (
    any_equal,
    bad_signature,
    check_window,
    delivery_id,
    hmac_sha256,
    json_object,
    require,
    unix_time,
)
from runner.webhooks.delivery import Delivery
from runner.webhooks.errors import MalformedHeader
from runner.webhooks.secret import Secret, base64_key

PREFIX = b"whsec_"
# More would be a sender listing keys it does not hold; bound the work per request.
MAX_SIGNATURES = 32


def signing_key(secret: Secret) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, as in the
    reference libraries); :class:`ConfigError` naming the source if it is not base64."""
    text = secret.reveal().strip().removeprefix(PREFIX)
    return base64_key(secret, text, what="a Standard Webhooks secret is 'whsec_' and base64")


def sign(secret: Secret, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a Standard Webhooks message we send (notifications): what
    :func:`verify_standard`, and every receiver's reference library, checks."""
    signed = hmac_sha256(signing_key(secret), msg_id.encode(), b".", str(timestamp).encode(),
                         b".", body)  # fmt: skip
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(signed).decode("ascii"),
    }


def verify_standard(
    secrets: Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window: float,
    scheme: str = "standard",
    where: str = "the sender's endpoint settings",
) -> Delivery:
    """Verify a Standard Webhooks delivery (``headers`` with lower-case names)."""
    msg_id = require(headers, "webhook-id", scheme)
    raw_ts = require(headers, "webhook-timestamp", scheme)
    listed = require(headers, "webhook-signature", scheme).split()
    timestamp = unix_time(raw_ts, "webhook-timestamp", scheme)
    if len(listed) > MAX_SIGNATURES:
        raise MalformedHeader(scheme, f"the webhook-signature header lists over {MAX_SIGNATURES}")
    received: list[bytes] = []
    for entry in listed:
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            # Other versions (v1a: asymmetric) may come alongside; not ours to check. An
            # empty "v1," is no signature: counting it would call the header well-formed.
            continue
        try:
            received.append(base64.b64decode(value, validate=True))
        except binascii.Error:
            continue
    if not received:
        raise MalformedHeader(
            scheme, "the webhook-signature header holds no 'v1,<base64>' signature"
        )
    # The id and timestamp are signed exactly as sent, so no re-formatting can differ.
    signed = (msg_id.encode("utf-8"), b".", raw_ts.encode("ascii"), b".", body)
    expected = [hmac_sha256(signing_key(s), *signed) for s in secrets]
    if not any_equal(expected, received):
        raise bad_signature(scheme, "webhook-signature", secrets, where)
    check_window(scheme, timestamp, now=now, window=window)
    return Delivery(
        scheme=scheme,
        delivery_id=delivery_id(msg_id, "webhook-id", scheme),
        timestamp=float(timestamp),
        event=_event_type(body),
    )


def _event_type(body: bytes) -> str | None:
    """The payload's ``type`` (the spec's envelope), read only after verification."""
    kind = (json_object(body) or {}).get("type")
    return kind if isinstance(kind, str) else None

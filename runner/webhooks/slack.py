"""Slack: ``X-Slack-Signature: v0=<hex>``, the HMAC-SHA256 of ``v0:{timestamp}:{body}``.

https://api.slack.com/authentication/verifying-requests-from-slack; the timestamp
(``X-Slack-Request-Timestamp``) must be within 5 minutes. Two deliveries are answered,
not run: ``url_verification`` (Events API, answered with its ``challenge``) and
``ssl_check`` (slash commands). Slack may send ``ssl_check`` unsigned, so Bolt answers it
before verifying; so do we, as ``verified=False`` — it can only ever earn a 200.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs

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
from runner.webhooks.secret import Secret

_SIGNATURE = re.compile(r"v0=([0-9a-fA-F]{64})")
_SETTINGS = "the Slack app's Basic Information → Signing Secret"
# An ssl_check form is a few dozen bytes; anything bigger is not one.
_SSL_CHECK_MAX = 1024


def verify_slack(
    secrets: Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window: float,
) -> Delivery:
    """Verify a Slack request (``headers`` with lower-case names)."""
    unsigned = "x-slack-signature" not in headers and "x-slack-request-timestamp" not in headers
    if unsigned and _form(body, _SSL_CHECK_MAX).get("ssl_check") == "1":
        return Delivery("slack", None, None, None, kind="ssl_check", verified=False)
    hint = f": Slack signs every request; check {_SETTINGS}"
    raw_ts = require(headers, "X-Slack-Request-Timestamp", "slack", hint)
    value = require(headers, "X-Slack-Signature", "slack", hint)
    timestamp = unix_time(raw_ts, "X-Slack-Request-Timestamp", "slack")
    found = _SIGNATURE.fullmatch(value)
    if found is None:
        raise MalformedHeader("slack", "the X-Slack-Signature header must be 'v0=' and 64 hex")
    received = bytes.fromhex(found.group(1))
    expected = [
        hmac_sha256(s.reveal(), b"v0:", raw_ts.encode("ascii"), b":", body) for s in secrets
    ]
    if not any_equal(expected, [received]):
        raise bad_signature("slack", "X-Slack-Signature", secrets, _SETTINGS)
    check_window("slack", timestamp, now=now, window=window)
    return _classify(body, timestamp, found.group(1).lower())


def _classify(body: bytes, timestamp: int, signature: str) -> Delivery:
    """What the verified body is; its parsing happens only now that it is authentic."""
    payload = json_object(body)
    if payload is not None:
        kind = payload.get("type")
        if kind == "url_verification":
            challenge = payload.get("challenge")
            return Delivery(
                "slack",
                None,
                float(timestamp),
                "url_verification",
                kind="url_verification",
                challenge=challenge if isinstance(challenge, str) else None,
            )
        event = payload.get("event")
        inner = event.get("type") if isinstance(event, dict) else None
        # Events API retries keep event_id; a retry must not start a second run.
        ident = payload.get("event_id")
        return Delivery(
            "slack",
            delivery_id(
                ident if isinstance(ident, str) else f"v0={signature}", "event_id", "slack"
            ),
            float(timestamp),
            inner if isinstance(inner, str) else kind if isinstance(kind, str) else None,
        )
    form = _form(body, len(body))
    if form.get("ssl_check") == "1":
        return Delivery("slack", None, float(timestamp), None, kind="ssl_check")
    # Slash commands and interactions carry no delivery id and are not retried: the
    # signature itself identifies the request, so an identical replay within the window
    # is caught by the replay guard.
    return Delivery("slack", f"v0={signature}", float(timestamp), form.get("command"))


def _form(body: bytes, limit: int) -> dict[str, str]:
    """A urlencoded form's first value per name; empty when it is not one (or too big)."""
    if len(body) > limit:
        return {}
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}

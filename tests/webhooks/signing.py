"""Signers written independently of runner.webhooks, and a check that a refusal is clean."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from runner.web.problems import status_of
from runner.webhooks import SCHEMES, Secret, SignatureError


def hmac256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256, the primitive every scheme here uses."""
    return hmac.new(key, data, hashlib.sha256).digest()


def github_headers(secret: bytes, body: bytes, event: str = "push") -> dict[str, str]:
    """Headers GitHub sends for ``body`` signed with ``secret``."""
    return {
        "X-Hub-Signature-256": "sha256=" + hmac256(secret, body).hex(),
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Event": event,
    }


def slack_headers(secret: bytes, body: bytes, ts: int) -> dict[str, str]:
    """Headers Slack sends for ``body`` at Unix time ``ts``."""
    sig = hmac256(secret, b"v0:%d:" % ts + body).hex()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": "v0=" + sig}


def standard_headers(whsec: str, msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` signed with a ``whsec_`` secret."""
    key = base64.b64decode(whsec.removeprefix("whsec_"))
    sig = base64.b64encode(hmac256(key, f"{msg_id}.{ts}.".encode() + body)).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": "v1," + sig}


def teams_headers(token_b64: str, body: bytes) -> dict[str, str]:
    """The Authorization header Teams sends for ``body``."""
    mac = hmac256(base64.b64decode(token_b64), body)
    return {"Authorization": "HMAC " + base64.b64encode(mac).decode()}


def assert_refused(
    excinfo: pytest.ExceptionInfo[SignatureError],
    kind: type[SignatureError],
    *secrets: Secret,
    says: str | tuple[str, ...] = (),
    scheme: str | None = None,
) -> None:
    """The refusal is of ``kind``, answered 403 over HTTP, opens with its scheme's name,
    names each of ``says`` as a whole word (``-301 s`` does not say ``301 s``), and shows
    no secret value."""
    err = excinfo.value
    assert type(err) is kind
    assert status_of(err) == (403, "Webhook delivery refused")
    assert err.scheme in SCHEMES and err.scheme == (scheme or err.scheme)
    assert err.detail.startswith(f"{err.scheme} webhook refused: ")
    text = str(err) + repr(err) + err.detail
    for words in (says,) if isinstance(says, str) else says:
        assert re.search(rf"(?<![\w-]){re.escape(words)}(?![\w-])", text), (words, text)
    for secret in secrets:
        value = secret.reveal()
        for shown in (value, base64.b64encode(value), value.removeprefix(b"whsec_")):
            assert shown.decode("latin-1") not in text

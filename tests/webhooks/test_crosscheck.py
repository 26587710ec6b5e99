"""Cross-checks against the official standardwebhooks library, when it is installed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from runner.webhooks import BadSignature, Secret, verify

standardwebhooks = pytest.importorskip("standardwebhooks")

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("body", [b"{}", b'{"test": 2432232314}', '{"emoji": "✓"}'.encode()])
def test_what_the_reference_library_signs_we_accept(body):
    """A delivery signed by the reference library verifies here."""
    now = int(time.time())
    sig = standardwebhooks.Webhook(WHSEC).sign(
        "msg_x", datetime.fromtimestamp(now, tz=UTC), body.decode()
    )
    headers = {"webhook-id": "msg_x", "webhook-timestamp": str(now), "webhook-signature": sig}
    assert verify("standard", Secret(WHSEC), headers, body, now=now).delivery_id == "msg_x"
    # ...and the reference library agrees with the same headers.
    standardwebhooks.Webhook(WHSEC).verify(body, headers)


def test_what_the_reference_library_refuses_we_refuse():
    """A body the reference library rejects after tampering is rejected here too."""
    now = int(time.time())
    sig = standardwebhooks.Webhook(WHSEC).sign("msg_y", datetime.fromtimestamp(now, tz=UTC), "{}")
    headers = {"webhook-id": "msg_y", "webhook-timestamp": str(now), "webhook-signature": sig}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(WHSEC).verify(b"[]", headers)
    with pytest.raises(BadSignature):
        verify("standard", Secret(WHSEC), headers, b"[]", now=now)

"""Standard Webhooks deliveries: webhook-id, webhook-timestamp, webhook-signature."""

from __future__ import annotations

import pytest

from runner.errors import ConfigError
from runner.webhooks import (
    BadSignature,
    MalformedHeader,
    MissingHeader,
    Secret,
    SignatureError,
    StaleTimestamp,
    check_secret,
    verify,
)
from tests.webhooks.signing import assert_refused, standard_headers

# The reference test vector of the Standard Webhooks libraries (tests/test_webhooks.py).
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
HEADERS = {"webhook-id": MSG_ID, "webhook-timestamp": str(TS), "webhook-signature": SIGNATURE}
SECRET = Secret(WHSEC, source="env:WH")


def test_reference_vector_verifies():
    """The spec's reference id, timestamp, secret, payload and signature are accepted."""
    got = verify("standard", SECRET, HEADERS, BODY, now=TS)
    assert (got.scheme, got.delivery_id, got.timestamp, got.kind) == ("standard", MSG_ID, TS, "run")


def test_secret_without_prefix_verifies():
    """The bare base64 key works too, as in the reference libraries."""
    assert verify("standard", Secret(WHSEC[6:]), HEADERS, BODY, now=TS).delivery_id == MSG_ID


def test_reference_invalid_signature_is_refused():
    """The reference tests' near-miss signature (last base64 digit changed) is refused."""
    headers = dict(HEADERS, **{"webhook-signature": SIGNATURE[:-2] + "A="})
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, headers, BODY, now=TS)
    assert_refused(e, BadSignature, SECRET, says="env:WH")


def test_any_listed_signature_may_match():
    """Among several signatures and versions, one valid v1 signature is enough."""
    listed = " ".join(
        [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1a,bm90IGJhc2U2NA",
            "garbage",
            SIGNATURE,
        ]
    )
    headers = dict(HEADERS, **{"webhook-signature": listed})
    assert verify("standard", SECRET, headers, BODY, now=TS).kind == "run"


def test_rotated_secrets_any_may_match():
    """While a secret is rotated, a delivery signed with either the old or new one verifies."""
    old = Secret("whsec_" + "A" * 43 + "=", source="env:OLD")
    assert verify("standard", [old, SECRET], HEADERS, BODY, now=TS).kind == "run"


def test_tampered_body_is_refused():
    """One changed byte in the body fails every signature."""
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, HEADERS, b'{"test": 2432232315}', now=TS)
    assert_refused(e, BadSignature, SECRET)


def test_wrong_secret_is_refused():
    """A delivery signed with another key is refused."""
    other = Secret("whsec_" + "B" * 43 + "=")
    with pytest.raises(SignatureError) as e:
        verify("standard", other, HEADERS, BODY, now=TS)
    assert_refused(e, BadSignature, other, SECRET)


def test_stale_timestamp_is_refused():
    """A correctly signed delivery more than 5 minutes old is refused as stale."""
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, HEADERS, BODY, now=TS + 301)
    assert_refused(e, StaleTimestamp, SECRET, says="NTP")


def test_future_timestamp_is_refused():
    """A correctly signed delivery more than 5 minutes in the future is refused."""
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, HEADERS, BODY, now=TS - 301)
    assert_refused(e, StaleTimestamp, SECRET, says="in the future")


def test_fresh_signature_from_the_signer_verifies():
    """A delivery signed now with our independent signer verifies, carrying its type."""
    body = b'{"type": "invoice.paid", "data": {}}'
    headers = standard_headers(WHSEC, "msg_2", 1_700_000_000, body)
    got = verify("standard", SECRET, headers, body, now=1_700_000_100)
    assert (got.delivery_id, got.event) == ("msg_2", "invoice.paid")


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_refused(missing):
    """Each of the three headers is required, and the refusal names it."""
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, headers, BODY, now=TS)
    assert_refused(e, MissingHeader, SECRET, says=missing)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-timestamp", "hello"),
        ("webhook-timestamp", "1614265330.0"),
        ("webhook-signature", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ("webhook-signature", "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ("webhook-signature", "v1,not*base64"),
        ("webhook-signature", " ".join([SIGNATURE] * 33)),
    ],
)
def test_garbled_header_is_malformed(name, value):
    """A timestamp or signature list not in the spec's format is refused as malformed."""
    headers = dict(HEADERS, **{name: value})
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, headers, BODY, now=TS)
    assert_refused(e, MalformedHeader, SECRET, says=name)


def test_secret_that_is_not_base64_is_a_config_error():
    """A whsec_ secret that is not base64 is refused at start-up, naming only its source."""
    bad = Secret("whsec_not*base64!", source="file:/etc/runner/wh")
    with pytest.raises(ConfigError, match="file:/etc/runner/wh") as e:
        check_secret("standard", bad)
    assert "not*base64" not in str(e.value)

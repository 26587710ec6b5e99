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
    assert_refused(e, BadSignature, SECRET, says=("env:WH", "webhook-signature"))


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
    assert verify("standard", [SECRET, old], HEADERS, BODY, now=TS).kind == "run"


def test_a_listed_signature_that_is_not_base64_does_not_hide_a_good_one():
    """A garbled v1 entry before the valid one is skipped, not the end of the list."""
    headers = dict(HEADERS, **{"webhook-signature": "v1,not*base64 " + SIGNATURE})
    assert verify("standard", SECRET, headers, BODY, now=TS).delivery_id == MSG_ID


def test_up_to_32_signatures_are_checked():
    """A sender may list 32 signatures; the 33rd is refused before any HMAC is computed."""
    listed = " ".join(["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="] * 31 + [SIGNATURE])
    headers = dict(HEADERS, **{"webhook-signature": listed})
    assert verify("standard", SECRET, headers, BODY, now=TS).runs


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
    assert isinstance(e.value, StaleTimestamp) and e.value.skew == 301


def test_fresh_signature_from_the_signer_verifies():
    """A delivery signed now with our independent signer verifies, carrying its type."""
    body = b'{"type": "invoice.paid", "data": {}}'
    headers = standard_headers(WHSEC, "msg_2", 1_700_000_000, body)
    got = verify("standard", SECRET, headers, body, now=1_700_000_100)
    assert (got.delivery_id, got.event) == ("msg_2", "invoice.paid")


@pytest.mark.parametrize(
    ("body", "event"),
    [
        (b'\n {"type": "invoice.paid"}', "invoice.paid"),
        (b'{"type": 3}', None),
        (b'{"type": "x"', None),
        (b"[1]", None),
        (b"type=x", None),
    ],
)
def test_event_type_is_read_from_a_json_envelope(body, event):
    """The event is the envelope's string ``type`` (after any blanks); else there is none."""
    headers = standard_headers(WHSEC, "msg_3", 1_700_000_000, body)
    got = verify("standard", SECRET, headers, body, now=1_700_000_000)
    assert (got.event, got.delivery_id, got.runs) == (event, "msg_3", True)


def test_overlong_message_id_is_refused():
    """A signed webhook-id too long to be a real one cannot fill the replay guard."""
    headers = standard_headers(WHSEC, "m" * 300, TS, BODY)
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, headers, BODY, now=TS)
    assert_refused(e, MalformedHeader, SECRET, says="the webhook-id header")


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_refused(missing):
    """Each of the three headers is required, and the refusal names it."""
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, headers, BODY, now=TS)
    assert_refused(e, MissingHeader, SECRET, says=f"{missing} header is missing")
    assert e.value.detail == f"standard webhook refused: the {missing} header is missing"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-timestamp", "hello"),
        ("webhook-timestamp", "1614265330.0"),
        ("webhook-signature", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ("webhook-signature", "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ("webhook-signature", "v1,not*base64"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKt!SyZlE3uFJELVlNIOLJ1OE="),
        ("webhook-signature", "v1,"),
        ("webhook-signature", "v1"),
        ("webhook-signature", " ".join([SIGNATURE] * 33)),
    ],
)
def test_garbled_header_is_malformed(name, value):
    """A timestamp or signature list not in the spec's format is refused as malformed."""
    headers = dict(HEADERS, **{name: value})
    with pytest.raises(SignatureError) as e:
        verify("standard", SECRET, headers, BODY, now=TS)
    assert_refused(e, MalformedHeader, SECRET, says=f"the {name} header")


def test_secret_that_is_not_base64_is_a_config_error():
    """A whsec_ secret that is not base64 is refused at start-up, naming only its source."""
    bad = Secret("whsec_not*base64!", source="file:/etc/runner/wh")
    with pytest.raises(ConfigError, match="file:/etc/runner/wh") as e:
        check_secret("standard", bad)
    assert "not*base64" not in str(e.value)


@pytest.mark.parametrize("key", [WHSEC[:20] + " " + WHSEC[20:], WHSEC + "!", "whsec_", "whsec_=="])
def test_secret_with_a_stray_character_or_no_key_is_a_config_error(key):
    """A key with a character outside base64, or none at all, is refused at start-up."""
    with pytest.raises(ConfigError, match="env:WH"):
        check_secret("standard", Secret(key, source="env:WH"))

"""Microsoft Teams outgoing webhooks: Authorization: HMAC over the body."""

from __future__ import annotations

import json

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
from tests.webhooks.signing import assert_refused, teams_headers

# The security-token form of Microsoft's outgoing-webhook sample (AuthProvider.cs).
# Microsoft publishes no body/signature pair, so the expected HMAC below was computed
# once with Python's hmac module and is pinned against regressions.
TOKEN = "vqF0En+Z0ucuRTM/01o2GuhMH3hKKk/N2bOmlM31zaA="
SECRET = Secret(TOKEN, source="env:TEAMS")
BODY = (
    b'{"type":"message","id":"1485983408511","timestamp":"2017-05-24T17:39:56.5962587Z",'
    b'"text":"<at>Runner</at> deploy"}'
)
PINNED = {"Authorization": "HMAC tgAWM8imImokb7Mqx1+zVLa3IY4foJPQ1nLZvI3wTM8="}
SENT = 1495647596.596258


def test_pinned_signature_verifies():
    """The pinned HMAC of a sample activity verifies, with its id, type and time."""
    got = verify("teams", SECRET, PINNED, BODY, now=SENT + 2)
    assert (got.delivery_id, got.event, got.timestamp) == ("1485983408511", "message", SENT)


def test_signer_agrees_with_the_pinned_value():
    """The test signer reproduces the pinned header, so the two cross-check each other."""
    assert teams_headers(TOKEN, BODY) == PINNED


def test_tampered_body_is_refused():
    """A changed message text fails the HMAC."""
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, PINNED, BODY.replace(b"deploy", b"destroy"), now=SENT)
    assert_refused(e, BadSignature, SECRET, says="security token")


def test_wrong_secret_is_refused():
    """An HMAC made with another team's token is refused."""
    other = "QgyNSToQjf4p6+YzDpjKks1/tXeJQ7FhVHqRwTnugVI="
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, teams_headers(other, BODY), BODY, now=SENT)
    assert_refused(e, BadSignature, SECRET, Secret(other), says="env:TEAMS")


def test_missing_authorization_is_refused():
    """A request with no Authorization header is refused, naming it."""
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, {}, BODY, now=SENT)
    assert_refused(e, MissingHeader, SECRET, says="Authorization")


@pytest.mark.parametrize("value", ["Bearer abc", "HMAC not*base64", "HMAC"])
def test_garbled_authorization_is_malformed(value):
    """An Authorization header that is not 'HMAC <base64>' is refused as malformed."""
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, {"Authorization": value}, BODY, now=SENT)
    assert_refused(e, MalformedHeader, SECRET, says="HMAC <base64>")


def test_stale_activity_is_refused():
    """A correctly signed activity sent more than 5 minutes ago is refused as a replay."""
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, PINNED, BODY, now=SENT + 301)
    assert_refused(e, StaleTimestamp, SECRET)


def test_future_activity_is_refused():
    """A correctly signed activity dated more than 5 minutes ahead is refused."""
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, PINNED, BODY, now=SENT - 301)
    assert_refused(e, StaleTimestamp, SECRET, says="in the future")


def test_activity_without_timestamp_has_none():
    """A signed activity with no timestamp verifies, with no time to check."""
    body = json.dumps({"type": "message", "id": "m-2"}).encode()
    got = verify("teams", SECRET, teams_headers(TOKEN, body), body, now=SENT)
    assert (got.delivery_id, got.timestamp) == ("m-2", None)


def test_token_that_is_not_base64_is_a_config_error():
    """A security token that is not base64 is refused at start-up, naming only its source."""
    with pytest.raises(ConfigError, match="env:T") as e:
        check_secret("teams", Secret("not base64!", source="env:T"))
    assert "not base64!" not in str(e.value)

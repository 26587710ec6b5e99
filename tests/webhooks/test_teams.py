"""Microsoft Teams outgoing webhooks: Authorization: HMAC over the body."""

from __future__ import annotations

import json
from datetime import UTC, datetime

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
    assert (got.scheme, got.kind, got.runs) == ("teams", "run", True)


def test_signer_agrees_with_the_pinned_value():
    """The test signer reproduces the pinned header, so the two cross-check each other."""
    assert teams_headers(TOKEN, BODY) == PINNED


def test_tampered_body_is_refused():
    """A changed message text fails the HMAC."""
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, PINNED, BODY.replace(b"deploy", b"destroy"), now=SENT)
    assert_refused(e, BadSignature, SECRET, says=("security token", "Authorization"))


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
    assert isinstance(e.value, StaleTimestamp) and e.value.skew > 300


def test_activity_without_timestamp_is_refused():
    """A signed activity with no time (or no readable time) cannot be checked for age:
    refused, since it could be replayed for ever."""
    for stamp in (None, "yesterday"):
        body = json.dumps({"type": "message", "id": "m-2", "timestamp": stamp}).encode()
        with pytest.raises(MalformedHeader, match="timestamp"):
            verify("teams", SECRET, teams_headers(TOKEN, body), body, now=SENT)


def test_a_naive_timestamp_is_read_as_utc_and_its_age_checked():
    """A timestamp without a zone is UTC: a stale one is refused like any other."""
    naive = datetime.fromtimestamp(SENT - 3600, UTC).replace(tzinfo=None).isoformat()
    body = json.dumps({"type": "message", "id": "m-3", "timestamp": naive}).encode()
    with pytest.raises(StaleTimestamp):
        verify("teams", SECRET, teams_headers(TOKEN, body), body, now=SENT)


def test_an_activity_without_id_is_known_by_its_signature():
    """No id: the HMAC names the delivery, so a copy of it is recognised as a replay."""
    when = datetime.fromtimestamp(SENT, UTC).isoformat()
    body = json.dumps({"type": "message", "timestamp": when}).encode()
    first = verify("teams", SECRET, teams_headers(TOKEN, body), body, now=SENT)
    again = verify("teams", SECRET, teams_headers(TOKEN, body), body, now=SENT + 1)
    assert first.delivery_id and first.delivery_id == again.delivery_id


def test_token_that_is_not_base64_is_a_config_error():
    """A security token that is not base64 is refused at start-up, naming only its source."""
    with pytest.raises(ConfigError, match="env:T: a Teams security token is base64") as e:
        check_secret("teams", Secret("not base64!", source="env:T"))
    assert "not base64!" not in str(e.value)


def test_token_without_base64_padding_verifies():
    """A security token pasted without its trailing '=' still works (padding is optional)."""
    unpadded = Secret(TOKEN.rstrip("="), source="env:TEAMS")
    assert verify("teams", unpadded, PINNED, BODY, now=SENT).delivery_id == "1485983408511"


def test_several_blanks_after_hmac_are_allowed():
    """Authorization is 'HMAC', one or more spaces, then the signature (RFC 9110 §11.4)."""
    headers = {"Authorization": PINNED["Authorization"].replace(" ", "   ")}
    assert verify("teams", SECRET, headers, BODY, now=SENT).runs


def test_signature_with_a_character_outside_base64_is_malformed():
    """A stray character inside an otherwise right signature is refused, not skipped over."""
    value = PINNED["Authorization"]
    headers = {"Authorization": value[:12] + "!" + value[12:]}
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, headers, BODY, now=SENT)
    assert_refused(e, MalformedHeader, SECRET, says="HMAC <base64>")


def signed(activity: object) -> tuple[dict[str, str], bytes]:
    """The Authorization header and body for ``activity`` as JSON."""
    body = json.dumps(activity).encode()
    return teams_headers(TOKEN, body), body


@pytest.mark.parametrize("activity", [[1, 2], "text", {"id": 5, "type": ["message"]}])
def test_activity_of_an_odd_shape_is_refused_for_want_of_a_time(activity):
    """A signed body that is not the usual activity has no time to check its age by:
    refused as malformed, since it could otherwise be replayed for ever."""
    headers, body = signed(activity)
    with pytest.raises(MalformedHeader, match="timestamp"):
        verify("teams", SECRET, headers, body, now=SENT)


def test_timestamp_without_a_time_zone_is_read_as_utc():
    """A timestamp with no zone is UTC, as Teams writes its times: it is checked."""
    headers, body = signed({"type": "message", "id": "m-3", "timestamp": "2017-05-24T17:39:56"})
    assert verify("teams", SECRET, headers, body, now=SENT).timestamp == int(SENT)
    with pytest.raises(StaleTimestamp):
        verify("teams", SECRET, headers, body, now=SENT + 10 * 365 * 86400)


def test_overlong_activity_id_is_refused():
    """An activity id too long to be Teams' cannot fill the replay guard."""
    when = "2017-05-24T17:39:56Z"
    headers, body = signed({"type": "message", "id": "1" * 300, "timestamp": when})
    with pytest.raises(SignatureError) as e:
        verify("teams", SECRET, headers, body, now=SENT)
    assert_refused(e, MalformedHeader, SECRET, says="the id header")

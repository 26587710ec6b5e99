"""Slack requests: v0 signatures over the timestamp and body, within 5 minutes."""

from __future__ import annotations

import json

import pytest

from runner.webhooks import (
    BadSignature,
    MalformedHeader,
    MissingHeader,
    Secret,
    SignatureError,
    StaleTimestamp,
    verify,
)
from tests.webhooks.signing import assert_refused, slack_headers

# Slack's documented example ("Verifying requests from Slack").
DOCS_SECRET = Secret("8f742231b10e8888abcd99yyyzzz85a5", source="file:/run/slack")
DOCS_TS = 1531420618
DOCS_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOCS_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
DOCS_HEADERS = {"X-Slack-Request-Timestamp": str(DOCS_TS), "X-Slack-Signature": DOCS_SIGNATURE}
SECRET = DOCS_SECRET.reveal()


def test_slacks_documented_example_verifies():
    """Slack's published signing secret, timestamp, body and signature are accepted."""
    got = verify("slack", DOCS_SECRET, DOCS_HEADERS, DOCS_BODY, now=DOCS_TS + 10)
    assert (got.scheme, got.timestamp, got.event, got.kind) == (
        "slack",
        DOCS_TS,
        "/webhook-collect",
        "run",
    )
    assert got.delivery_id == DOCS_SIGNATURE


def test_tampered_body_is_refused():
    """A slash command whose text was changed on the way is refused."""
    body = DOCS_BODY.replace(b"text=", b"text=rm")
    with pytest.raises(SignatureError) as e:
        verify("slack", DOCS_SECRET, DOCS_HEADERS, body, now=DOCS_TS)
    assert_refused(e, BadSignature, DOCS_SECRET, says=("Signing Secret", "X-Slack-Signature"))


def test_wrong_secret_is_refused():
    """A request signed with another app's secret is refused, naming our secret's source."""
    with pytest.raises(SignatureError) as e:
        verify("slack", Secret("other", source="env:S"), DOCS_HEADERS, DOCS_BODY, now=DOCS_TS)
    assert_refused(e, BadSignature, Secret("other"), DOCS_SECRET, says="env:S")


def test_signature_binds_the_timestamp():
    """Moving the timestamp header (to slip a replay into the window) breaks the signature."""
    headers = dict(DOCS_HEADERS, **{"X-Slack-Request-Timestamp": str(DOCS_TS + 400)})
    with pytest.raises(BadSignature):
        verify("slack", DOCS_SECRET, headers, DOCS_BODY, now=DOCS_TS + 400)


def test_stale_timestamp_is_refused():
    """A validly signed request more than 5 minutes old is refused as stale."""
    with pytest.raises(SignatureError) as e:
        verify("slack", DOCS_SECRET, DOCS_HEADERS, DOCS_BODY, now=DOCS_TS + 301)
    assert_refused(e, StaleTimestamp, DOCS_SECRET, says="301 s ago")
    assert isinstance(e.value, StaleTimestamp) and e.value.skew == -301


def test_future_timestamp_is_refused():
    """A request signed more than 5 minutes ahead of our clock is refused."""
    with pytest.raises(SignatureError) as e:
        verify("slack", DOCS_SECRET, DOCS_HEADERS, DOCS_BODY, now=DOCS_TS - 301)
    assert_refused(e, StaleTimestamp, DOCS_SECRET, says=("301 s in the future", "NTP"))
    assert isinstance(e.value, StaleTimestamp) and e.value.skew == 301


def test_edges_of_the_window_are_accepted():
    """Exactly 5 minutes early or late is still inside the window."""
    for now in (DOCS_TS - 300, DOCS_TS + 300):
        assert verify("slack", DOCS_SECRET, DOCS_HEADERS, DOCS_BODY, now=now).kind == "run"


@pytest.mark.parametrize("missing", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
def test_missing_header_is_refused(missing):
    """A request without the signature or its timestamp is refused, naming the header."""
    headers = {k: v for k, v in DOCS_HEADERS.items() if k != missing}
    with pytest.raises(SignatureError) as e:
        verify("slack", DOCS_SECRET, headers, DOCS_BODY, now=DOCS_TS)
    assert_refused(e, MissingHeader, DOCS_SECRET, says=(missing, "Signing Secret"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Slack-Signature", "v1=" + "0" * 64),
        ("X-Slack-Signature", "v0=abc"),
        ("X-Slack-Request-Timestamp", "1531420618.5"),
        ("X-Slack-Request-Timestamp", "yesterday"),
    ],
)
def test_garbled_header_is_malformed(name, value):
    """A signature or timestamp not in Slack's format is refused as malformed."""
    headers = dict(DOCS_HEADERS, **{name: value})
    with pytest.raises(SignatureError) as e:
        verify("slack", DOCS_SECRET, headers, DOCS_BODY, now=DOCS_TS)
    assert_refused(e, MalformedHeader, DOCS_SECRET, says=f"the {name} header")


def test_url_verification_is_answered_with_its_challenge():
    """A signed url_verification is recognised, with the challenge to answer."""
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2r", "type": "url_verification"})
    raw = body.encode()
    got = verify("slack", DOCS_SECRET, slack_headers(SECRET, raw, DOCS_TS), raw, now=DOCS_TS)
    assert (got.kind, got.challenge, got.runs) == ("url_verification", "3eZbrw1aBm2r", False)
    assert (got.scheme, got.timestamp, got.event) == ("slack", DOCS_TS, "url_verification")


def test_url_verification_with_leading_blanks_is_recognised():
    """A JSON body is recognised as JSON even after leading blank lines."""
    raw = b'\n  {"type": "url_verification", "challenge": "c-1"}'
    got = verify("slack", DOCS_SECRET, slack_headers(SECRET, raw, DOCS_TS), raw, now=DOCS_TS)
    assert (got.kind, got.challenge) == ("url_verification", "c-1")


def test_a_challenge_that_is_not_text_is_not_echoed():
    """Only a string challenge is answered back; anything else is dropped."""
    raw = b'{"type": "url_verification", "challenge": {"x": 1}}'
    got = verify("slack", DOCS_SECRET, slack_headers(SECRET, raw, DOCS_TS), raw, now=DOCS_TS)
    assert (got.kind, got.challenge) == ("url_verification", None)


def test_unsigned_url_verification_is_refused():
    """The challenge is answered only when Slack signed it."""
    raw = b'{"type": "url_verification", "challenge": "x"}'
    with pytest.raises(MissingHeader):
        verify("slack", DOCS_SECRET, {}, raw, now=DOCS_TS)


def test_signed_ssl_check_is_answered_not_run():
    """A signed ssl_check=1 form is recognised and does not start a run."""
    raw = b"ssl_check=1&token=xyzz0WbapA4vBCDEFasx0q6G"
    got = verify("slack", DOCS_SECRET, slack_headers(SECRET, raw, DOCS_TS), raw, now=DOCS_TS)
    assert (got.kind, got.verified, got.runs) == ("ssl_check", True, False)
    assert (got.scheme, got.timestamp, got.delivery_id) == ("slack", DOCS_TS, None)


def test_unsigned_ssl_check_is_answered_unverified():
    """An unsigned ssl_check (Slack may send one) is recognised as unverified, never run."""
    got = verify("slack", DOCS_SECRET, {}, b"ssl_check=1&token=x", now=DOCS_TS)
    assert (got.kind, got.verified, got.runs) == ("ssl_check", False, False)
    assert (got.scheme, got.timestamp, got.delivery_id) == ("slack", None, None)


def test_unsigned_command_dressed_as_ssl_check_is_refused():
    """Only a small pure ssl_check form escapes the signature; a signed header means check."""
    headers = {"X-Slack-Signature": "v0=" + "0" * 64}
    with pytest.raises(MissingHeader):
        verify("slack", DOCS_SECRET, headers, b"ssl_check=1", now=DOCS_TS)
    with pytest.raises(MissingHeader):
        verify("slack", DOCS_SECRET, {}, b"ssl_check=1&text=" + b"x" * 2000, now=DOCS_TS)
    headers = {"X-Slack-Request-Timestamp": str(DOCS_TS)}
    with pytest.raises(MissingHeader):
        verify("slack", DOCS_SECRET, headers, b"ssl_check=1", now=DOCS_TS)


def test_events_api_retry_keeps_its_delivery_id():
    """An Events API callback is identified by event_id, which Slack keeps when retrying."""
    raw = json.dumps(
        {"type": "event_callback", "event_id": "Ev08MFMKH6", "event": {"type": "app_mention"}}
    ).encode()
    first = verify("slack", DOCS_SECRET, slack_headers(SECRET, raw, DOCS_TS), raw, now=DOCS_TS)
    retry = verify(
        "slack", DOCS_SECRET, slack_headers(SECRET, raw, DOCS_TS + 60), raw, now=DOCS_TS + 60
    )
    assert first.delivery_id == retry.delivery_id == "Ev08MFMKH6"
    assert first.event == "app_mention"


def signed_json(payload: object, ts: int = DOCS_TS) -> tuple[dict[str, str], bytes]:
    """Slack's headers and the body for a JSON payload signed at ``ts``."""
    raw = json.dumps(payload).encode()
    return slack_headers(SECRET, raw, ts), raw


def test_event_without_event_id_is_identified_by_its_signature():
    """A signed JSON body with no event_id still gets an id, so a copy of it is a replay."""
    headers, raw = signed_json({"type": "event_callback", "event": {"type": "message"}})
    first = verify("slack", DOCS_SECRET, headers, raw, now=DOCS_TS)
    copy = verify("slack", DOCS_SECRET, dict(headers), raw, now=DOCS_TS + 30)
    assert first.delivery_id == copy.delivery_id == headers["X-Slack-Signature"]
    assert (first.scheme, first.timestamp, first.event, first.runs) == (
        "slack",
        DOCS_TS,
        "message",
        True,
    )
    other_headers, other = signed_json({"type": "event_callback", "event": {"type": "reaction"}})
    assert verify("slack", DOCS_SECRET, other_headers, other, now=DOCS_TS).delivery_id not in (
        None,
        first.delivery_id,
    )


def test_event_id_that_is_not_text_falls_back_to_the_signature():
    """A non-string event_id is not used as the delivery id; the signature is."""
    headers, raw = signed_json({"type": "event_callback", "event_id": 42})
    got = verify("slack", DOCS_SECRET, headers, raw, now=DOCS_TS)
    assert got.delivery_id == headers["X-Slack-Signature"]


def test_overlong_event_id_is_refused():
    """An event_id too long to be Slack's cannot fill the replay guard."""
    headers, raw = signed_json({"type": "event_callback", "event_id": "E" * 300})
    with pytest.raises(SignatureError) as e:
        verify("slack", DOCS_SECRET, headers, raw, now=DOCS_TS)
    assert_refused(e, MalformedHeader, DOCS_SECRET, says="the event_id header")


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        ({"type": "event_callback", "event": "app_mention"}, "event_callback"),
        ({"type": "event_callback", "event": {"type": 7}}, "event_callback"),
        ({"type": "block_actions"}, "block_actions"),
        ({"type": 7, "event": {}}, None),
        ({"token": "t"}, None),
    ],
)
def test_event_names_the_inner_event_else_the_outer_type(payload, event):
    """The event is the inner event's type, else the payload's type, else none: odd shapes
    are accepted, not a crash."""
    headers, raw = signed_json(payload)
    got = verify("slack", DOCS_SECRET, headers, raw, now=DOCS_TS)
    assert (got.event, got.kind, got.scheme, got.timestamp) == (event, "run", "slack", DOCS_TS)


def test_form_fields_are_read_up_to_a_hundred():
    """A form of up to 100 fields is read; a bigger one is not parsed at all."""
    for count, command in ((99, "/deploy"), (100, None)):
        raw = "&".join([f"f{n}=x" for n in range(count)] + ["command=/deploy"]).encode()
        headers = slack_headers(SECRET, raw, DOCS_TS)
        got = verify("slack", DOCS_SECRET, headers, raw, now=DOCS_TS)
        assert (got.event, got.delivery_id) == (command, headers["X-Slack-Signature"])

"""GitHub deliveries: X-Hub-Signature-256 over the raw body."""

from __future__ import annotations

import pytest

from runner.webhooks import (
    BadSignature,
    MalformedHeader,
    MissingHeader,
    Secret,
    SignatureError,
    verify,
)
from tests.webhooks.signing import assert_refused, github_headers

# GitHub's documented example ("Validating webhook deliveries").
DOCS_SECRET = Secret("It's a Secret to Everybody", source="env:GH")
DOCS_BODY = b"Hello, World!"
DOCS_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
NOW = 1_700_000_000.0


def test_githubs_documented_example_verifies():
    """GitHub's published secret, payload and signature are accepted."""
    headers = {"X-Hub-Signature-256": DOCS_SIGNATURE, "X-GitHub-Delivery": "d-1"}
    got = verify("github", DOCS_SECRET, headers, DOCS_BODY, now=NOW)
    assert (got.scheme, got.delivery_id, got.timestamp, got.kind) == ("github", "d-1", None, "run")
    assert got.runs


def test_event_header_is_reported():
    """X-GitHub-Event becomes the delivery's event."""
    got = verify("github", Secret("s"), github_headers(b"s", b"{}"), b"{}", now=NOW)
    assert got.event == "push"


def test_ping_is_answered_not_run():
    """A signed GitHub ping is recognised as a ping, which does not start a run."""
    body = b'{"zen": "Keep it logically awesome."}'
    got = verify("github", Secret("s"), github_headers(b"s", body, "ping"), body, now=NOW)
    assert got.kind == "ping" and not got.runs


def test_tampered_body_is_refused():
    """One changed byte in the body fails the signature."""
    headers = {"X-Hub-Signature-256": DOCS_SIGNATURE}
    with pytest.raises(SignatureError) as e:
        verify("github", DOCS_SECRET, headers, b"Hello, World?", now=NOW)
    assert_refused(e, BadSignature, DOCS_SECRET, says=("env:GH", "X-Hub-Signature-256"))


def test_wrong_secret_is_refused():
    """A signature made with another secret is refused, naming where ours comes from."""
    with pytest.raises(SignatureError) as e:
        verify("github", DOCS_SECRET, github_headers(b"other", DOCS_BODY), DOCS_BODY, now=NOW)
    assert_refused(e, BadSignature, DOCS_SECRET, says="Settings")


def test_missing_signature_says_to_set_a_secret():
    """A delivery with no signature header tells the admin to set the webhook's secret."""
    with pytest.raises(SignatureError) as e:
        verify("github", DOCS_SECRET, {"X-GitHub-Event": "push"}, DOCS_BODY, now=NOW)
    assert_refused(e, MissingHeader, DOCS_SECRET, says="X-Hub-Signature-256")


def test_sha1_signature_alone_is_refused():
    """The legacy SHA-1 X-Hub-Signature is not accepted in place of SHA-256."""
    headers = {"X-Hub-Signature": "sha1=" + "0" * 40}
    with pytest.raises(SignatureError) as e:
        verify("github", DOCS_SECRET, headers, DOCS_BODY, now=NOW)
    assert_refused(e, MissingHeader, DOCS_SECRET, says="SHA-1")


@pytest.mark.parametrize(
    "value", ["757107ea0eb2509fc211221cce984b8a", "sha1=" + "0" * 64, "sha256=zz" + "0" * 62, "é"]
)
def test_garbled_signature_is_malformed(value):
    """A signature not of the form sha256=<64 hex> is refused as malformed."""
    with pytest.raises(SignatureError) as e:
        verify("github", DOCS_SECRET, {"X-Hub-Signature-256": value}, DOCS_BODY, now=NOW)
    assert_refused(e, MalformedHeader, DOCS_SECRET, says="64 hex")


def test_uppercase_hex_is_accepted():
    """Hex digits are compared as bytes, so their case does not matter."""
    headers = {"X-Hub-Signature-256": DOCS_SIGNATURE.upper().replace("SHA256", "sha256")}
    assert verify("github", DOCS_SECRET, headers, DOCS_BODY, now=NOW).kind == "run"


def test_overlong_delivery_id_is_refused():
    """A delivery id too long to be GitHub's cannot fill the replay guard."""
    headers = {"X-Hub-Signature-256": DOCS_SIGNATURE, "X-GitHub-Delivery": "x" * 10_000}
    with pytest.raises(SignatureError) as e:
        verify("github", DOCS_SECRET, headers, DOCS_BODY, now=NOW)
    assert_refused(e, MalformedHeader, DOCS_SECRET, says="X-GitHub-Delivery")


def test_delivery_ids_up_to_256_characters_are_accepted():
    """256 characters is the longest delivery id kept; one more is refused."""
    headers = {"X-Hub-Signature-256": DOCS_SIGNATURE, "X-GitHub-Delivery": "d" * 256}
    assert verify("github", DOCS_SECRET, headers, DOCS_BODY, now=NOW).delivery_id == "d" * 256
    headers["X-GitHub-Delivery"] += "d"
    with pytest.raises(MalformedHeader):
        verify("github", DOCS_SECRET, headers, DOCS_BODY, now=NOW)


def test_rotated_secrets_either_may_match():
    """While a secret is rotated, a delivery signed with the old one or the new one verifies."""
    new = Secret("the new secret", source="env:GH_NEW")
    for secrets in ([DOCS_SECRET, new], [new, DOCS_SECRET]):
        headers = {"X-Hub-Signature-256": DOCS_SIGNATURE}
        assert verify("github", secrets, headers, DOCS_BODY, now=NOW).runs

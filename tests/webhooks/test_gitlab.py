"""GitLab deliveries: the X-Gitlab-Token secret token, and Standard-Webhooks signing."""

from __future__ import annotations

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
from tests.webhooks.signing import assert_refused, standard_headers

TOKEN = Secret("gl-hook-token-4f1c", source="env:GL")
SIGNING = Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", source="env:GLSIGN")
BODY = b'{"object_kind": "push", "ref": "refs/heads/main"}'
NOW = 1_700_000_000
BASE = {
    "X-Gitlab-Event": "Push Hook",
    "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
    "Idempotency-Key": "f5e5f430-f57b-4e6e-9fac-d9128cd7232f",
}


def signed(ts: int = NOW, body: bytes = BODY) -> dict[str, str]:
    """GitLab's signing headers (webhook-id is the Idempotency-Key) for ``body``."""
    return standard_headers(SIGNING.reveal().decode(), BASE["Idempotency-Key"], ts, body)


def test_secret_token_verifies():
    """The right X-Gitlab-Token is accepted, with GitLab's event and idempotency key."""
    headers = dict(BASE, **{"X-Gitlab-Token": "gl-hook-token-4f1c"})
    got = verify("gitlab", TOKEN, headers, BODY, now=NOW)
    assert (got.event, got.delivery_id, got.timestamp) == (
        "Push Hook",
        BASE["Idempotency-Key"],
        None,
    )


def test_event_uuid_is_the_id_without_an_idempotency_key():
    """Older GitLab versions send only X-Gitlab-Event-UUID, which then identifies the delivery."""
    headers = {"X-Gitlab-Token": "gl-hook-token-4f1c", "X-Gitlab-Event-UUID": "u-1"}
    assert verify("gitlab", TOKEN, headers, BODY, now=NOW).delivery_id == "u-1"


def test_wrong_token_is_refused_without_quoting_it():
    """A wrong token is refused, and neither it nor ours appears in the message."""
    headers = dict(BASE, **{"X-Gitlab-Token": "gl-hook-token-OLD"})
    with pytest.raises(SignatureError) as e:
        verify("gitlab", TOKEN, headers, BODY, now=NOW)
    assert_refused(e, BadSignature, TOKEN, Secret("gl-hook-token-OLD"), says="env:GL")


def test_missing_token_is_refused():
    """A delivery without X-Gitlab-Token is refused, saying where to set it."""
    with pytest.raises(SignatureError) as e:
        verify("gitlab", TOKEN, BASE, BODY, now=NOW)
    assert_refused(e, MissingHeader, TOKEN, says=("X-Gitlab-Token", "Settings → Webhooks"))


def test_signing_token_reference_vector_verifies():
    """GitLab's signing follows Standard Webhooks, so the spec's reference vector verifies."""
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    got = verify("gitlab", SIGNING, headers, b'{"test": 2432232314}', now=1614265330)
    assert (got.scheme, got.delivery_id, got.timestamp) == (
        "gitlab",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
    )


def test_signed_delivery_verifies_with_both_tokens():
    """With a secret token and a signing token configured, a delivery carrying both passes."""
    headers = dict(BASE, **signed(), **{"X-Gitlab-Token": "gl-hook-token-4f1c"})
    got = verify("gitlab", [TOKEN, SIGNING], headers, BODY, now=NOW + 5)
    assert (got.timestamp, got.event) == (NOW, "Push Hook")


def test_signing_token_cannot_be_downgraded_to_the_plain_token():
    """When a signing token is configured, a captured X-Gitlab-Token alone is not enough."""
    headers = dict(BASE, **{"X-Gitlab-Token": "gl-hook-token-4f1c"})
    with pytest.raises(SignatureError) as e:
        verify("gitlab", [TOKEN, SIGNING], headers, BODY, now=NOW)
    assert_refused(e, MissingHeader, TOKEN, SIGNING, says="webhook-id")


def test_tampered_signed_body_is_refused():
    """A signed body changed on the way is refused."""
    with pytest.raises(SignatureError) as e:
        verify("gitlab", SIGNING, dict(BASE, **signed()), BODY + b" ", now=NOW)
    assert_refused(e, BadSignature, SIGNING, says="Settings → Webhooks", scheme="gitlab")


def test_wrong_signing_token_is_refused():
    """A delivery signed with another signing token is refused."""
    other = Secret("whsec_" + "C" * 43 + "=")
    with pytest.raises(SignatureError) as e:
        verify("gitlab", other, dict(BASE, **signed()), BODY, now=NOW)
    assert_refused(e, BadSignature, other, SIGNING)


def test_stale_signed_delivery_is_refused():
    """A signed delivery older than the window is refused."""
    with pytest.raises(SignatureError) as e:
        verify("gitlab", SIGNING, dict(BASE, **signed()), BODY, now=NOW + 301)
    assert_refused(e, StaleTimestamp, SIGNING)


def test_future_signed_delivery_is_refused():
    """A signed delivery dated beyond the window ahead is refused."""
    with pytest.raises(SignatureError) as e:
        verify("gitlab", SIGNING, dict(BASE, **signed()), BODY, now=NOW - 301)
    assert_refused(e, StaleTimestamp, SIGNING, says="in the future", scheme="gitlab")


@pytest.mark.parametrize("name", ["Idempotency-Key", "webhook-id", "X-Gitlab-Event-UUID"])
def test_overlong_delivery_id_is_refused_naming_its_header(name):
    """Whichever header carries the delivery id, one too long to be GitLab's is refused."""
    headers = {"X-Gitlab-Token": "gl-hook-token-4f1c", name: "u" * 300}
    with pytest.raises(SignatureError) as e:
        verify("gitlab", TOKEN, headers, BODY, now=NOW)
    assert_refused(e, MalformedHeader, TOKEN, says=f"the {name} header", scheme="gitlab")


def test_token_beyond_latin_1_verifies_however_the_header_was_decoded():
    """A secret token with '€' matches whether the server decoded the header as latin-1
    (as ASGI does) or as UTF-8."""
    token = "gl-€-token"
    secret = Secret(token, source="env:GL")
    as_asgi = token.encode().decode("latin-1")
    for sent in (as_asgi, token):
        assert verify("gitlab", secret, {"X-Gitlab-Token": sent}, BODY, now=NOW).runs
    with pytest.raises(BadSignature):
        verify("gitlab", secret, {"X-Gitlab-Token": "gl-€-tokem"}, BODY, now=NOW)

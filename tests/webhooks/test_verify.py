"""The verify() entry point: dispatch, header case, secrets, no secret in any refusal."""

from __future__ import annotations

import pytest

from runner.errors import ConfigError, Forbidden, Refused, RunnerError
from runner.webhooks import SCHEMES, Secret, SignatureError, check_secret, verify
from tests.webhooks.signing import github_headers

BODY = b'{"ref": "main"}'
SECRET = Secret("k3y-Value-For-Tests", source="env:K")


def test_header_names_are_case_insensitive():
    """Headers match whatever their case, as HTTP requires."""
    headers = {k.upper(): v for k, v in github_headers(SECRET.reveal(), BODY).items()}
    assert verify("github", SECRET, headers, BODY, now=0).delivery_id is not None


def test_unknown_scheme_is_a_config_error():
    """An unknown verify = "…" names the schemes there are."""
    with pytest.raises(ConfigError, match="github, gitlab, slack, teams, standard"):
        verify("bitbucket", SECRET, {}, BODY, now=0)


def test_no_secret_is_a_config_error():
    """An empty list of secrets is a configuration mistake, not an open door."""
    with pytest.raises(ConfigError, match="at least one secret"):
        verify("github", [], github_headers(b"", BODY), BODY, now=0)


def test_errors_belong_to_the_runner_tree():
    """Refusals are Forbidden refusals (answered 403 as problem+json) under RunnerError."""
    assert issubclass(SignatureError, Forbidden)
    assert issubclass(SignatureError, Refused)
    assert issubclass(SignatureError, RunnerError)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_empty_request_is_refused_without_the_secret(scheme):
    """Every scheme refuses a bare request, and no message holds the secret."""
    secret = Secret("whsec_" + "Zm9vYmFy" * 4) if scheme == "standard" else SECRET
    with pytest.raises(SignatureError) as e:
        verify(scheme, secret, {"Content-Type": "application/json"}, BODY, now=0)
    assert e.value.scheme == scheme
    assert secret.reveal().decode() not in str(e.value)


@pytest.mark.parametrize("scheme", ["github", "gitlab", "slack"])
def test_any_secret_serves_hmac_and_token_schemes(scheme):
    """Schemes keyed by raw bytes accept any non-empty secret at start-up."""
    check_secret(scheme, [SECRET, Secret("whsec_Zm9v")])


def test_gitlab_signing_token_that_is_not_base64_is_a_config_error():
    """A whsec_ GitLab signing token that cannot be decoded stops start-up, naming its source."""
    check_secret("gitlab", Secret("any plain secret token"))
    with pytest.raises(ConfigError, match="env:GLSIGN"):
        check_secret("gitlab", [SECRET, Secret("whsec_not*base64", source="env:GLSIGN")])

"""Secure by default: no unauthenticated listening beyond loopback without an opt-in."""

from __future__ import annotations

import pytest

from runner.auth.bind import InsecureBindError, check_bind
from runner.errors import ConfigError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_authentication(host):
    """Listening on loopback with no authentication is allowed."""
    check_bind(host, auth_configured=False, allow_open=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.4", "runner.example.com"])
def test_network_address_without_authentication_is_refused(host):
    """A network address (or a name that may resolve to one) with no auth is refused."""
    with pytest.raises(InsecureBindError) as caught:
        check_bind(host, auth_configured=False, allow_open=False)
    assert isinstance(caught.value, ConfigError)
    message = str(caught.value)
    assert "without authentication" in message
    assert "runner passwd" in message and "--insecure-no-auth" in message


def test_network_address_with_authentication_is_allowed():
    """Configured authentication makes any address acceptable."""
    check_bind("0.0.0.0", auth_configured=True, allow_open=False)


def test_explicit_opt_in_allows_an_open_network_address():
    """--insecure-no-auth is the operator saying something in front authenticates."""
    check_bind("0.0.0.0", auth_configured=False, allow_open=True)

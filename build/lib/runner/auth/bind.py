"""Secure by default: no open runner on a network address by accident.

A runner holds a credential that can create and delete infrastructure. Listening beyond
loopback with no authentication would hand that credential to anyone who can reach the port,
so it takes an explicit opt-in (behind a trusted proxy that authenticates, say).
"""

from __future__ import annotations

import ipaddress

from runner.errors import ConfigError


class InsecureBindError(ConfigError):
    """The server would listen on a network address with no authentication."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; any other name may resolve anywhere."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth_configured: bool, allow_open: bool) -> None:
    """Raise :class:`InsecureBindError` for a non-loopback ``host`` with no authentication."""
    if auth_configured or allow_open or is_loopback(host):
        return
    shown = host or "all addresses"
    raise InsecureBindError(
        f"refusing to listen on {shown} without authentication: anyone who reaches it could "
        "run jobs with this host's Azure identity. Configure users (runner passwd FILE USER, "
        "then runner serve --htpasswd FILE) or API tokens (runner token create NAME --jobs "
        "PATTERN), or listen on 127.0.0.1, or pass --insecure-no-auth if something in front "
        "of the runner already authenticates every request."
    )

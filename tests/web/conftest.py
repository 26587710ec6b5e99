"""Fixtures for the web layer's tests: the authentication middleware's tests share the
credential files of ``tests/auth``."""

from tests.auth.conftest import bcrypt_calls, clock, make_htpasswd, token_store
from tests.azure.conftest import azure_rig

__all__ = ["azure_rig", "bcrypt_calls", "clock", "make_htpasswd", "token_store"]

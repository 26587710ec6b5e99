"""Webhook secrets: read from the environment, a file or Key Vault, never shown.

``runner.toml`` names a secret by where it lives (``"env:NAME"``, ``"file:PATH"`` or
``"keyvault:https://…"``), never by value: a literal in a config file ends up in backups
and diffs. The value and its sources live in :mod:`runner.secrets`; this module keeps the
names webhook code has always used, and what the schemes need of a key.
"""

from __future__ import annotations

import base64
import binascii

from runner.errors import ConfigError
from runner.secrets.local import MAX_SECRET_FILE
from runner.secrets.local import read_local as load_secret
from runner.secrets.value import Secret

__all__ = ["MAX_SECRET_FILE", "Secret", "base64_key", "load_secret"]


def base64_key(secret: Secret, text: bytes, *, what: str) -> bytes:
    """A non-empty key decoded from base64 ``text`` (padding optional), or a ConfigError
    naming the secret's source and ``what`` it should be — never the value."""
    try:
        key = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ConfigError(f"secret {secret.source}: {what}") from None
    if not key:
        raise ConfigError(f"secret {secret.source}: the key is empty")
    return key

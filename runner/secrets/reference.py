"""``keyvault:https://<vault>.vault.azure.net/secrets/<name>[/<version>]``: a secret in
Azure Key Vault, by reference (the URL is the secret's identifier as Azure shows it).

Without a version the reference follows the secret: a new version (a rotation) is what
it reads next. With one, it is pinned to that version (for the old half of a rotation
list, say).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from runner.errors import ConfigError

PREFIX = "keyvault:"
_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")
_VERSION = re.compile(r"[0-9a-fA-F]{32}")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9-]+)+", re.IGNORECASE)
FORM = "keyvault:https://VAULT.vault.azure.net/secrets/NAME[/VERSION]"


@dataclass(frozen=True)
class VaultRef:
    """Where a secret lives in Key Vault; no value, so it may be shown and logged."""

    vault_url: str  # https://<vault>.vault.azure.net
    name: str
    version: str | None = None

    @property
    def host(self) -> str:
        return self.vault_url.removeprefix("https://")

    @property
    def vault(self) -> str:
        """The vault's name: the first label of its host."""
        return self.host.split(".", 1)[0]

    @property
    def source(self) -> str:
        tail = f"/{self.version}" if self.version else ""
        return f"{PREFIX}{self.vault_url}/secrets/{self.name}{tail}"

    def __str__(self) -> str:
        return self.source


def is_reference(spec: str) -> bool:
    return spec.startswith(PREFIX)


def parse_reference(spec: str) -> VaultRef:
    """The :class:`VaultRef` of ``spec``, or a ConfigError saying what form it must take."""
    url = spec.removeprefix(PREFIX)
    bad = ConfigError(f"secret {spec}: a Key Vault reference has the form {FORM}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad from None
    host = parts.hostname or ""
    if parts.scheme != "https" or not _HOST.fullmatch(host) or parts.username or parts.password:
        raise bad
    if parts.query or parts.fragment:
        raise bad
    segments = parts.path.strip("/").split("/")
    if len(segments) not in (2, 3) or segments[0] != "secrets":
        raise bad
    name, version = segments[1], segments[2] if len(segments) == 3 else None
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"secret {spec}: {name!r} is not a Key Vault secret name (1-127 of 0-9 a-z A-Z -)"
        )
    if version is not None and not _VERSION.fullmatch(version):
        raise ConfigError(f"secret {spec}: a secret version is 32 hexadecimal digits")
    netloc = host.lower() + (f":{port}" if port else "")
    return VaultRef(f"https://{netloc}", name, version.lower() if version else None)

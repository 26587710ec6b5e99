"""Key Vaults of the sandbox: secrets with versions, soft delete, recovery and purge.

The state only; ``vault_app`` serves it over Key Vault's REST API. Secret names are
case-insensitive and keep the case they were created with, as in Azure. Soft delete is
always on (Azure made it mandatory): a deleted secret keeps its name, in the deleted
collection, until it is recovered or purged, and a new secret cannot take that name.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import ArmError

__all__ = ["Deleted", "SecretVersion", "Vault", "VaultError", "VaultSecret", "valid_vault_name"]

SECRET_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")
MAX_VALUE = 25 * 1024  # Key Vault's limit on a secret's value (bytes)
RECOVERY_LEVEL = "Recoverable+Purgeable"
RETENTION_DAYS = 90


def valid_vault_name(name: str) -> bool:
    """3-24 letters, digits and single hyphens, starting with a letter (Azure's rule)."""
    return bool(re.fullmatch(r"[a-zA-Z](?:-?[a-zA-Z0-9])+", name)) and 3 <= len(name) <= 24


class VaultError(ArmError):
    """An error as Key Vault answers it: ``{"error": {"code", "message", "innererror"}}``."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(code, message, status=status)
        self.inner = inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def _not_found(name: str) -> VaultError:
    return VaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery "
        "command. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125182",
    )


@dataclass
class SecretVersion:
    """One version of a secret: its value and attributes."""

    version: str
    value: str
    created: int
    updated: int
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None

    def __repr__(self) -> str:  # never the value
        return f"SecretVersion(version={self.version!r}, enabled={self.enabled})"

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.updated,
            "recoveryLevel": RECOVERY_LEVEL,
            "recoverableDays": RETENTION_DAYS,
        }
        if self.not_before is not None:
            attrs["nbf"] = self.not_before
        if self.expires is not None:
            attrs["exp"] = self.expires
        return attrs


@dataclass
class VaultSecret:
    """Every version of one secret name, oldest first (the last is the current one)."""

    name: str
    versions: list[SecretVersion]

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]

    def version(self, version: str) -> SecretVersion | None:
        if not version:
            return self.latest
        return next((v for v in self.versions if v.version == version.lower()), None)


@dataclass
class Deleted:
    """A deleted secret, recoverable until purged."""

    secret: VaultSecret
    deleted_date: int
    scheduled_purge_date: int


@dataclass
class Vault:
    """One vault: its name (the host ``<name>.vault.azure.net``), ARM id and secrets."""

    name: str
    resource_id: str
    location: str
    secrets: dict[str, VaultSecret] = field(default_factory=dict)
    deleted: dict[str, Deleted] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Vault(name={self.name!r}, secrets={len(self.secrets)})"

    @property
    def url(self) -> str:
        return f"https://{self.name}.vault.azure.net"

    def scope(self, secret: str | None = None) -> str:
        """The RBAC scope of the vault, or of one of its secrets (beneath it)."""
        return self.resource_id + (f"/secrets/{secret}" if secret else "")

    def secret_id(self, name: str, version: str | None = None) -> str:
        return f"{self.url}/secrets/{name}" + (f"/{version}" if version else "")

    # -- operations (the caller holds the world lock) -----------------------------------
    def find(self, name: str) -> VaultSecret:
        found = self.secrets.get(name.lower())
        if found is None:
            raise _not_found(name)
        return found

    def set(
        self, name: str, value: str, now: int, **attrs: Any
    ) -> tuple[VaultSecret, SecretVersion]:
        """A new version of ``name`` (the secret is created if it does not exist)."""
        check_name(name)
        if len(value.encode()) > MAX_VALUE:
            raise VaultError(400, "BadParameter", f"Secret value is over {MAX_VALUE} bytes.")
        if name.lower() in self.deleted:
            raise VaultError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can only be recovered or purged.",
                inner="ObjectIsDeletedButRecoverable",
            )
        version = SecretVersion(uuid.uuid4().hex, value, now, now, **attrs)
        secret = self.secrets.setdefault(name.lower(), VaultSecret(name, []))
        secret.versions.append(version)
        return secret, version

    def delete(self, name: str, now: int) -> Deleted:
        secret = self.find(name)
        del self.secrets[name.lower()]
        gone = Deleted(secret, now, now + RETENTION_DAYS * 86400)
        self.deleted[name.lower()] = gone
        return gone

    def find_deleted(self, name: str) -> Deleted:
        found = self.deleted.get(name.lower())
        if found is None:
            raise VaultError(
                404,
                "SecretNotFound",
                f"Deleted Secret not found: {name}",
            )
        return found

    def recover(self, name: str) -> VaultSecret:
        gone = self.find_deleted(name)
        del self.deleted[name.lower()]
        self.secrets[name.lower()] = gone.secret
        return gone.secret

    def purge(self, name: str) -> None:
        self.find_deleted(name)
        del self.deleted[name.lower()]


def check_name(name: str) -> None:
    """Key Vault's rule for secret names: 1-127 letters, digits and hyphens."""
    if not SECRET_NAME.fullmatch(name):
        raise VaultError(
            400,
            "BadParameter",
            "The request URI contains an invalid name: "
            f"{name[:130]}. Secret names may contain only 0-9, a-z, A-Z and -.",
        )

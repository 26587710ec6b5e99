"""JWT-shaped access tokens, signed by the sandbox so that its ARM can check them.

The tokens look like Entra ID's (header.payload.signature, base64url, the usual claims) so
code that peeks at ``oid`` or ``tid`` works, but they are HMAC-signed with a key kept in the
state directory: only this sandbox can verify them, which is all ARM needs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TOKEN_LIFETIME", "Claims", "TokenError", "TokenIssuer", "decode_unverified"]

# Real IMDS issues ~24 h tokens; azure-identity treats < 300 s left as expired, so short
# tokens would make every ARM call fetch a new one (see AZURE.md, "Token lifetime").
TOKEN_LIFETIME = 24 * 3600


class TokenError(Exception):
    """A bearer token that this sandbox did not issue, or that has expired."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Claims:
    """What ARM needs to know about the caller of a request."""

    object_id: str
    app_id: str
    tenant_id: str
    audience: str
    expires_on: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_unverified(token: str) -> dict[str, Any]:
    """Return a JWT's payload without checking its signature (for tests and logs)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("InvalidAuthenticationToken", "The access token is not a JWT.")
    payload: dict[str, Any] = json.loads(_unb64(parts[1]))
    return payload


class TokenIssuer:
    """Issues and verifies the sandbox's access tokens."""

    def __init__(self, key_file: Path, tenant_id: str) -> None:
        # Persisting the key lets a restarted standalone sandbox accept tokens that
        # long-lived clients still hold in their cache.
        if key_file.exists():
            self._key = key_file.read_bytes()
        else:
            self._key = secrets.token_bytes(32)
            key_file.write_bytes(self._key)
            key_file.chmod(0o600)
        self.tenant_id = tenant_id
        self.issuer = f"https://sts.windows.net/{tenant_id}/"

    def __repr__(self) -> str:
        return f"TokenIssuer(tenant_id={self.tenant_id!r})"

    def issue(
        self,
        *,
        object_id: str,
        app_id: str,
        audience: str,
        resource_id: str | None = None,
        now: float | None = None,
    ) -> tuple[str, int, int]:
        """Return ``(token, not_before, expires_on)`` for the given principal and audience."""
        issued = int(now if now is not None else time.time())
        expires_on = issued + TOKEN_LIFETIME
        payload: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer,
            "iat": issued,
            "nbf": issued,
            "exp": expires_on,
            "oid": object_id,
            "sub": object_id,
            "appid": app_id,
            "azp": app_id,
            "tid": self.tenant_id,
            "idtyp": "app",
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
        }
        if resource_id:
            payload["xms_mirid"] = resource_id
        header = {"typ": "JWT", "alg": "HS256", "kid": "sandbox"}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(payload, separators=(",", ":")).encode())
        )
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}", issued, expires_on

    def verify(self, token: str, now: float | None = None) -> Claims:
        """Check signature, issuer and lifetime; raise TokenError with an ARM code if bad."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("InvalidAuthenticationToken", "The access token is invalid.")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
        expected = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(expected, _unb64(parts[2]))
            payload = decode_unverified(token)
        except (ValueError, TypeError):
            valid = False
            payload = {}
        if not valid or payload.get("iss") != self.issuer:
            raise TokenError(
                "InvalidAuthenticationToken",
                "The access token is invalid: it was not issued by this sandbox.",
            )
        current = now if now is not None else time.time()
        if int(payload.get("exp", 0)) <= current:
            raise TokenError(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        return Claims(
            object_id=str(payload["oid"]),
            app_id=str(payload["appid"]),
            tenant_id=str(payload["tid"]),
            audience=str(payload["aud"]),
            expires_on=int(payload["exp"]),
        )

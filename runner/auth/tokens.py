"""Bearer API tokens for CI systems, stored hashed, each limited to job patterns.

A token is ``rnr_`` + 52 base32 characters (32 random bytes). The prefix lets secret
scanners (GitHub push protection, gitleaks) recognise a leaked one; the name is not in it.
The store keeps a SHA-256 of each token, never the token: it is shown once, at creation.

Why SHA-256 and not bcrypt: a slow hash protects low-entropy secrets (human passwords) from
guessing once the hashes leak. A 256-bit random token cannot be guessed at any hash speed,
so a fast hash loses nothing, and verifying costs microseconds per request instead of a
quarter-second of CPU.

The store file (JSON, 0600) is re-read when it changes, so ``runner token revoke`` takes
effect on a running server at its next request.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner.auth.files import atomic_write, file_version
from runner.errors import ConfigError

log = logging.getLogger("runner.auth")

PREFIX = "rnr_"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PATTERN = re.compile(r"[a-z0-9_\-*?\[\]!/]+")
_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TokenStoreError(ConfigError):
    """A token store that cannot be read or a token request that cannot be met."""


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token, without the token or its hash."""

    name: str
    jobs: tuple[str, ...]
    created: datetime
    expires: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


def parse_expiry(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m``, ``2w`` from ``now``, or an ISO date/time (UTC if naive)."""
    if m := _DURATION.fullmatch(text.strip()):
        return now + timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TokenStoreError(f"expiry {text!r}: expected e.g. 30d, 12h or 2026-12-31") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The token store file: create, verify, revoke and list tokens."""

    def __init__(self, path: Path, *, now: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._version: tuple[int, int, int] | None = None
        self._entries: builtins.list[tuple[str, TokenInfo]] = []
        self._refresh()

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r})"

    def present(self) -> bool:
        """True once the store file exists (made by the first ``runner token create``)."""
        return file_version(self.path) is not None

    def _read(self) -> builtins.list[tuple[str, TokenInfo]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [
                (
                    str(t["hash"]),
                    TokenInfo(
                        name=str(t["name"]),
                        jobs=tuple(str(j) for j in t["jobs"]),
                        created=datetime.fromisoformat(t["created"]),
                        expires=datetime.fromisoformat(t["expires"]) if t["expires"] else None,
                    ),
                )
                for t in data["tokens"]
            ]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenStoreError(f"token store {self.path} is damaged: {exc!r}") from None

    def _refresh(self) -> builtins.list[tuple[str, TokenInfo]]:
        version = file_version(self.path)
        with self._lock:
            if version != self._version:
                self._entries = self._read()
                self._version = version
            return self._entries

    def _write(self, entries: builtins.list[tuple[str, TokenInfo]]) -> None:
        tokens: builtins.list[dict[str, Any]] = [
            {
                "name": info.name,
                "hash": digest,
                "jobs": builtins.list(info.jobs),
                "created": info.created.isoformat(),
                "expires": info.expires.isoformat() if info.expires else None,
            }
            for digest, info in entries
        ]
        body = json.dumps({"version": 1, "tokens": tokens}, indent=2) + "\n"
        atomic_write(self.path, body.encode())
        self._refresh()

    def create(self, name: str, jobs: Sequence[str], expires: datetime | None = None) -> str:
        """Add a token named ``name`` for ``jobs`` patterns; return it (the only time)."""
        if not _NAME.fullmatch(name):
            raise TokenStoreError(f"token name {name!r}: use a-z, 0-9, '.', '_' and '-'")
        patterns = tuple(p.strip("/") for p in jobs)
        if not patterns or not all(_PATTERN.fullmatch(p) for p in patterns):
            raise TokenStoreError(f"job patterns {list(jobs)!r}: give e.g. 'deploy/*' or '**'")
        entries = builtins.list(self._refresh())
        if any(info.name == name for _, info in entries):
            raise TokenStoreError(f"a token named {name!r} exists; revoke it first")
        token = PREFIX + base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
        now = self._now().replace(microsecond=0)
        entries.append((_digest(token), TokenInfo(name, patterns, now, expires)))
        self._write(entries)
        return token

    def verify(self, token: str) -> TokenInfo | None:
        """The token's info if it is known and not expired, else None; constant time."""
        if not token.startswith(PREFIX):
            return None
        try:
            entries = self._refresh()
        except TokenStoreError as exc:
            # Fail closed: a damaged store might be hiding a revocation.
            log.error("refusing every token until fixed: %s", exc)
            return None
        digest = _digest(token)
        found: TokenInfo | None = None
        # Compare with every entry, no early exit: time does not depend on which matched.
        for stored, info in entries:
            if hmac.compare_digest(stored, digest):
                found = info
        if found is None or found.expired(self._now()):
            return None
        return found

    def revoke(self, name: str) -> bool:
        """Remove the token named ``name``; False if there was none."""
        entries = self._refresh()
        kept = [(d, info) for d, info in entries if info.name != name]
        if len(kept) == len(entries):
            return False
        self._write(kept)
        return True

    def list(self) -> builtins.list[TokenInfo]:
        """Every token's name, patterns and dates; never a token or its hash."""
        return [info for _, info in self._refresh()]


def create(
    store_path: Path, name: str, jobs: Sequence[str], expires: datetime | None = None
) -> str:
    """Create a token in the store at ``store_path``; the token is returned only here."""
    return TokenStore(store_path).create(name, jobs, expires)

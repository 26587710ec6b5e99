"""Users and passwords from an Apache htpasswd file, bcrypt entries only.

Only bcrypt (``$2y$``, ``$2b$``, ``$2a$``) is accepted: Apache's other formats (``$apr1$``
MD5, ``{SHA}`` unsalted SHA-1, DES/MD5 crypt, plain text) are fast to brute-force once the
file leaks, so a file holding one is refused at start with the line to fix.

The file is re-read when it changes (``runner passwd`` while the server runs takes effect on
the next request). If the changed file is invalid or gone, every check fails until it is
fixed: keeping the old users could keep a user the operator just removed.

bcrypt costs ~0.25 s of CPU at cost 12, so successful checks are cached for a few minutes
under an HMAC of (user, password) with a per-process key; a changed entry misses the cache.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import bcrypt

from runner.auth.files import atomic_write, file_version
from runner.errors import ConfigError

log = logging.getLogger("runner.auth")

DEFAULT_COST = 12
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
# No ':' (the separator), blanks or controls, and no leading '#': that line is a comment.
_USER = re.compile(r"[^\s:#\x00-\x1f\x7f][^\s:\x00-\x1f\x7f]{0,254}")
# bcrypt hashes the first 72 bytes only; bcrypt>=5 refuses longer input rather than truncate.
_MAX_PASSWORD = 72


class HtpasswdError(ConfigError):
    """An htpasswd file that cannot be used; the message names the file and line."""


def _weakness(hashed: str) -> str:
    """Name the scheme of a non-bcrypt entry, for the error message."""
    if hashed.startswith("$apr1$"):
        return "an MD5 ($apr1$) hash"
    if hashed.startswith("{SHA}"):
        return "an unsalted SHA-1 ({SHA}) hash"
    if hashed.startswith(("$1$", "$5$", "$6$")):
        return f"a crypt ({hashed[:3]}) hash"
    if len(hashed) == 13:
        return "a DES crypt hash"
    return "an unrecognised or plain-text password"


def parse(text: str, source: str) -> dict[str, str]:
    """The user -> bcrypt hash entries of an htpasswd file; refuse anything else by line."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        where = f"{source} line {number}"
        if not sep or not _USER.fullmatch(user):
            raise HtpasswdError(f"{where}: expected USER:BCRYPT-HASH")
        if user in entries:
            raise HtpasswdError(f"{where}: user {user!r} appears twice; keep one line")
        if not _BCRYPT.fullmatch(hashed):
            raise HtpasswdError(
                f"{where}: user {user!r} has {_weakness(hashed)}, which is fast to brute-force "
                f"if the file leaks; runner accepts bcrypt only. Set a new password with: "
                f"runner passwd {source} {user}"
            )
        entries[user] = hashed
    return entries


def _cost_of(entries: dict[str, str], default: int) -> int:
    """The highest bcrypt cost among the entries: what a dummy check must cost to blend in."""
    return max((int(h[4:6]) for h in entries.values()), default=default)


class Htpasswd:
    """Checks user passwords against an htpasswd file, re-read whenever it changes."""

    def __init__(
        self,
        path: Path,
        *,
        cache_ttl: float = 300.0,
        cache_size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # checks run in worker threads
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._cache_key = secrets.token_bytes()
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._clock = clock
        self._dummies: dict[int, bytes] = {}
        self._version = file_version(self.path)
        if self._version is None:
            raise HtpasswdError(f"htpasswd file {self.path} does not exist")
        self._entries = parse(self.path.read_text(encoding="utf-8"), str(self.path))
        self._cost = _cost_of(self._entries, DEFAULT_COST)
        self._dummy(self._cost)  # now, not during the first unknown user's request

    def __repr__(self) -> str:
        return f"Htpasswd({str(self.path)!r}, users={len(self._entries)})"

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(self._refresh())

    def _refresh(self) -> dict[str, str]:
        """The current entries, re-read if the file changed; empty (deny all) if now invalid."""
        version = file_version(self.path)
        with self._lock:
            if version == self._version:
                return self._entries
            self._version = version
            self._cache.clear()
            try:
                if version is None:
                    raise HtpasswdError(f"htpasswd file {self.path} was removed")
                self._entries = parse(self.path.read_text(encoding="utf-8"), str(self.path))
                self._cost = _cost_of(self._entries, self._cost)
                log.info("htpasswd reloaded: %d users", len(self._entries))
            except (OSError, UnicodeDecodeError, HtpasswdError) as exc:
                log.error("htpasswd unusable, refusing every user until fixed: %s", exc)
                self._entries = {}
            return self._entries

    def _dummy(self, cost: int) -> bytes:
        """A hash at the same cost as real entries, so unknown users take as long."""
        with self._lock:
            if cost not in self._dummies:
                self._dummies[cost] = bcrypt.hashpw(secrets.token_bytes(), bcrypt.gensalt(cost))
            return self._dummies[cost]

    def check(self, user: str, password: str) -> bool:
        """True if ``password`` is ``user``'s; as slow for unknown users as for known ones.

        Blocking (bcrypt): call it from a worker thread in async code.
        """
        entries = self._refresh()
        secret = password.encode()[:_MAX_PASSWORD]
        # Length-prefixed, so no (user, password) split can collide with another.
        message = f"{len(user)}:{user}".encode() + secret
        key = hmac.new(self._cache_key, message, hashlib.sha256).digest()
        hashed = entries.get(user)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == hashed and hit[1] > now:
                self._cache.move_to_end(key)
                return True
        if hashed is None:
            bcrypt.checkpw(secret, self._dummy(self._cost))
            return False
        ok = bcrypt.checkpw(secret, hashed.encode()) and b"\0" not in secret
        if ok:
            with self._lock:
                self._cache[key] = (hashed, now + self._cache_ttl)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return ok


def hash_password(password: str, *, cost: int = DEFAULT_COST) -> str:
    """A ``$2y$`` bcrypt hash (the prefix Apache's ``htpasswd -B`` writes; same algorithm)."""
    secret = password.encode()
    if not secret:
        raise ValueError("the password is empty")
    if len(secret) > _MAX_PASSWORD:
        raise ValueError(f"the password is longer than {_MAX_PASSWORD} bytes (bcrypt's limit)")
    if b"\0" in secret:
        raise ValueError("the password contains a NUL character")
    hashed = bcrypt.hashpw(secret, bcrypt.gensalt(cost)).decode()
    return "$2y$" + hashed[4:]  # bcrypt writes $2b$, the same algorithm


def set_password(path: Path, user: str, password: str, *, cost: int = DEFAULT_COST) -> bool:
    """Add or update ``user``'s entry atomically (mode 0600); True if the user was new.

    Other lines, comments included, are kept as they are.
    """
    path = Path(path)
    if not _USER.fullmatch(user):
        raise ValueError(
            f"user name {user!r} is empty, too long, starts with '#', or has ':' or blanks"
        )
    line = f"{user}:{hash_password(password, cost=cost)}"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    kept: list[str] = []
    new = True
    for old in lines:
        # A comment's first field starts with '#', which no user name does: it is kept.
        if old.strip().partition(":")[0] != user:
            kept.append(old)
        elif new:  # the first line of this user is replaced, any later one dropped
            kept.append(line)
            new = False
    if new:
        kept.append(line)
    atomic_write(path, ("\n".join(kept) + "\n").encode())
    return new

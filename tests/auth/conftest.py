"""Fixtures for authentication tests: htpasswd files at a low bcrypt cost, token stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bcrypt
import pytest

from runner.auth.htpasswd import set_password
from runner.auth.tokens import TokenStore

# bcrypt's minimum cost: ~1 ms a hash instead of ~250 ms at the production cost of 12.
FAST = 4


@pytest.fixture
def make_htpasswd(tmp_path):
    """Factory: an htpasswd file holding the given user -> password pairs."""

    def make(**users: str):
        path = tmp_path / "htpasswd"
        for user, password in users.items():
            set_password(path, user, password, cost=FAST)
        return path

    return make


class Clock:
    """A settable clock for expiry and rate-limit tests."""

    def __init__(self) -> None:
        self.wall = datetime(2030, 1, 1, tzinfo=UTC)
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def token_store(tmp_path, clock):
    """A token store in a temporary folder, on the test clock."""
    return TokenStore(tmp_path / "tokens.json", now=clock.now)


@pytest.fixture
def bcrypt_calls(monkeypatch):
    """Record the hash each bcrypt.checkpw call compares against (calls still go through)."""
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls

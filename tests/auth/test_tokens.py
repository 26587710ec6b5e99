"""Bearer tokens: shown once, stored hashed, limited to job patterns, expiring, revocable."""

from __future__ import annotations

import json
import logging
import re
import stat
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from runner.auth.cli import token_command
from runner.auth.principal import Principal
from runner.auth.tokens import TokenStore, TokenStoreError, create, parse_expiry


def test_create_returns_a_recognisable_token_once(token_store):
    """The token has the rnr_ prefix and 256 random bits; the store file never holds it."""
    token = token_store.create("ci-deploy", ["deploy/*"])
    assert re.fullmatch(r"rnr_[a-z2-7]{52}", token)
    text = token_store.path.read_text()
    assert token not in text and token[4:] not in text
    assert stat.S_IMODE(token_store.path.stat().st_mode) == 0o600
    assert token_store.create("other", ["**"]) != token


def test_verify_accepts_the_token_and_refuses_others(token_store):
    """The right token gives its name and patterns; a changed or foreign one gives None."""
    token = token_store.create("ci-deploy", ["deploy/*", "vm/create"])
    info = token_store.verify(token)
    assert info is not None
    assert (info.name, info.jobs) == ("ci-deploy", ("deploy/*", "vm/create"))
    assert token_store.verify(token[:-1] + ("a" if token[-1] != "a" else "b")) is None
    assert token_store.verify(token[4:]) is None
    assert token_store.verify("") is None


def test_token_patterns_limit_the_jobs(token_store):
    """A token for deploy/* runs deploy jobs only, and no path trick widens that."""
    info = token_store.verify(token_store.create("ci", ["deploy/*", "vm/create"]))
    who = Principal.token(info.name, info.jobs)
    assert who.may_run("deploy/site") and who.may_run("vm/create")
    assert not who.may_run("vm/delete")
    assert not who.may_run("deploy/site/extra")
    assert not who.may_run("deploy/../vm/delete")
    assert not who.may_run("deploy//site")


def test_an_expired_token_is_refused(token_store, clock):
    """A token works until its expiry and not from that moment on."""
    token = token_store.create("short", ["**"], expires=clock.now() + timedelta(days=1))
    assert token_store.verify(token) is not None
    clock.advance(86400)
    assert token_store.verify(token) is None


def test_an_expiry_in_another_time_zone_is_kept_as_that_instant(token_store, clock):
    """``--expires 2030-01-01T12:00+02:00`` ends the token at 10:00 UTC, not at 12:00 UTC."""
    expires = parse_expiry("2030-01-01T12:00:00+02:00", clock.now())
    assert expires == datetime(2030, 1, 1, 10, tzinfo=UTC)
    token = token_store.create("ci", ["**"], expires=expires)
    clock.advance(10 * 3600 - 1)
    assert token_store.verify(token) is not None
    clock.advance(1)
    assert token_store.verify(token) is None


def test_create_in_a_store_file_keeps_the_expiry(tmp_path, clock):
    """A token created through the module-level create() expires as asked."""
    path = tmp_path / "tokens.json"
    token = create(path, "ci", ["**"], expires=clock.now() + timedelta(hours=1))
    server = TokenStore(path, now=clock.now)
    assert server.verify(token) is not None
    clock.advance(3600)
    assert server.verify(token) is None


def test_revoke_takes_effect_in_a_running_server(tmp_path, clock):
    """Revoking through another store object (the CLI) is seen by the server's at once."""
    path = tmp_path / "tokens.json"
    server = TokenStore(path, now=clock.now)
    token = create(path, "ci", ["**"])
    assert server.verify(token) is not None
    assert TokenStore(path).revoke("ci") is True
    assert server.verify(token) is None
    assert server.revoke("ci") is False


def test_list_never_shows_tokens_or_hashes(token_store):
    """Listing gives names, patterns and dates only."""
    token = token_store.create("ci", ["deploy/*"])
    digest = json.loads(token_store.path.read_text())["tokens"][0]["hash"]
    (info,) = token_store.list()
    assert (info.name, info.jobs, info.expires) == ("ci", ("deploy/*",), None)
    assert token not in repr(info) and digest not in repr(info)
    assert repr(token_store) == f"TokenStore({str(token_store.path)!r})"


def test_patterns_are_stored_without_outer_slashes(token_store):
    """'/deploy/*/' is stored and listed as deploy/*, and matches as it."""
    token = token_store.create("ci", ["/deploy/*/", "vm/create/"])
    assert token_store.list()[0].jobs == ("deploy/*", "vm/create")
    assert token_store.verify(token).jobs == ("deploy/*", "vm/create")


def test_creation_time_is_recorded_to_the_second(token_store, clock):
    """A token's creation time is the clock's, without its fraction of a second."""
    clock.wall = clock.wall.replace(microsecond=654321)
    token_store.create("ci", ["**"])
    assert token_store.list()[0].created == clock.wall.replace(microsecond=0)


def test_store_file_is_versioned_indented_json(token_store, clock):
    """The store is JSON an operator can read and diff, with a format version first."""
    token_store.create("ci", ["deploy/*"], expires=clock.now() + timedelta(days=1))
    text = token_store.path.read_text()
    assert text.startswith('{\n  "version": 1,\n  "tokens": [\n    {\n      "name": "ci",')
    (row,) = json.loads(text)["tokens"]
    assert (row["jobs"], row["created"], row["expires"]) == (
        ["deploy/*"],
        "2030-01-01T00:00:00+00:00",
        "2030-01-02T00:00:00+00:00",
    )


def test_an_unchanged_store_is_not_read_again(token_store, monkeypatch):
    """Verifying tokens re-reads the store file only when it has changed."""
    token = token_store.create("ci", ["**"])
    reads: list[object] = []
    read_text = type(token_store.path).read_text

    def counting(self, *args, **kwargs):
        reads.append(self)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(type(token_store.path), "read_text", counting)
    for _ in range(3):
        assert token_store.verify(token) is not None
    assert reads == []
    TokenStore(token_store.path).create("other", ["**"])
    reads.clear()
    for _ in range(3):
        assert token_store.verify(token) is not None
    assert reads == [token_store.path]


@pytest.mark.parametrize(
    ("name", "jobs", "reason"),
    [
        ("CI Deploy", ["**"], "token name"),
        ("ci", [], "job patterns"),
        ("ci", ["a b"], "job patterns"),
        ("ci", ["deploy/X"], "job patterns"),
    ],
)
def test_bad_names_and_patterns_are_refused(token_store, name, jobs, reason):
    """Names and patterns that could not be matched or listed cleanly are refused."""
    with pytest.raises(TokenStoreError, match=reason):
        token_store.create(name, jobs)


def test_a_name_is_used_once(token_store):
    """A second token with a name in use is refused, not silently added."""
    token_store.create("ci", ["**"])
    with pytest.raises(TokenStoreError, match="exists; revoke it first"):
        token_store.create("ci", ["**"])


def test_a_damaged_store_refuses_every_token(token_store, caplog):
    """A store that cannot be read fails closed, it may be hiding a revocation."""
    token = token_store.create("ci", ["**"])
    token_store.path.write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="runner.auth"):
        assert token_store.verify(token) is None
    assert f"refusing every token until fixed: token store {token_store.path} is damaged" in (
        caplog.text
    )
    with pytest.raises(TokenStoreError, match="damaged"):
        token_store.list()


def test_expiry_is_read_as_a_duration_or_a_date():
    """30d, 12h, 90m, 2w and ISO dates are understood; anything else is explained."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_expiry("30d", now) == now + timedelta(days=30)
    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("2w", now) == now + timedelta(weeks=2)
    assert parse_expiry("2030-06-01", now) == datetime(2030, 6, 1, tzinfo=UTC)
    with pytest.raises(TokenStoreError, match="30d"):
        parse_expiry("soon", now)


def _args(store, command, **kw):
    return SimpleNamespace(store=store, token_command=command, **kw)


def test_token_commands_create_list_and_revoke(tmp_path, capsys):
    """``runner token create`` prints the token alone; list hides it; revoke removes it."""
    path = tmp_path / "tokens.json"
    args = _args(None, "create", name="ci", patterns=["deploy/*"], expires="30d")
    assert token_command(args, default_store=path) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert TokenStore(path).verify(token) is not None and "shown only now" in out.err
    assert token_command(_args(path, "list", json=True)) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "ci" and row["jobs"] == ["deploy/*"] and row["expires"]
    assert token_command(_args(path, "list", json=False)) == 0
    assert token not in capsys.readouterr().out
    assert token_command(_args(path, "revoke", name="ci")) == 0
    assert token_command(_args(path, "revoke", name="ci")) == 1
    assert TokenStore(path).list() == []


def test_token_command_explains_a_bad_request(tmp_path, capsys):
    """A refused creation exits 2 with the reason, and creates nothing."""
    args = _args(tmp_path / "t.json", "create", name="Bad Name", patterns=["**"], expires=None)
    assert token_command(args) == 2
    assert "token name" in capsys.readouterr().err

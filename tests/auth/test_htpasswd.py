"""Users from an htpasswd file: bcrypt only, reloaded on change, written atomically."""

from __future__ import annotations

import io
import logging
import os
import stat
from types import SimpleNamespace

import pytest

from runner.auth import htpasswd as htpasswd_module
from runner.auth.cli import passwd_command
from runner.auth.htpasswd import Htpasswd, HtpasswdError, set_password

from .conftest import FAST

# hash_password("s3cret", cost=12), made once: hashing at cost 12 takes a quarter second.
PINNED_12 = "$2y$12$OoRdt9ucen898QCyEl6JgeqjDarHmxciV9GgdCLIwwv.N393FmcNu"


def test_right_password_is_accepted(make_htpasswd):
    """A user's own password passes."""
    assert Htpasswd(make_htpasswd(alice="s3cret pass")).check("alice", "s3cret pass")


def test_wrong_password_is_refused(make_htpasswd):
    """Someone else's password, an empty one or a prefix does not pass."""
    users = Htpasswd(make_htpasswd(alice="s3cret", bob="hunter2"))
    assert not users.check("alice", "hunter2")
    assert not users.check("alice", "")
    assert not users.check("alice", "s3cre")


def test_unknown_user_still_costs_a_bcrypt_check(make_htpasswd, bcrypt_calls):
    """An unknown user is checked against a dummy hash, so timing does not reveal names."""
    users = Htpasswd(make_htpasswd(alice="s3cret"))
    assert not users.check("mallory", "s3cret")
    assert len(bcrypt_calls) == 1
    assert bcrypt_calls[0][4:6] == b"04"  # the dummy has the entries' cost, not a cheaper one


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("bob:$apr1$Vt4/8TKL$9L/MvQ9Eu3EH7bj0fOHbR/", "an MD5 ($apr1$) hash"),
        ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "an unsalted SHA-1 ({SHA}) hash"),
        ("bob:$1$salt$qJH7.N4xYta3aEG/dfqo/0", "a crypt ($1$) hash"),
        ("bob:$5$salt$Gcm6FsVtF/Qa77ZKD.iwsJlCVPY0XSMgLJL0Hnww/c1", "a crypt ($5$) hash"),
        ("bob:$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMu", "a crypt ($6$) hash"),
        ("bob:rl0uE0yJXfyAw", "a DES crypt hash"),
        ("bob:letmein", "an unrecognised or plain-text password"),
    ],
)
def test_weak_entries_are_refused_naming_the_line(tmp_path, make_htpasswd, entry, named):
    """A non-bcrypt entry stops start-up with its line, the reason and the fix."""
    path = make_htpasswd(alice="s3cret")
    path.write_text(path.read_text() + "# comment\n" + entry + "\n")
    with pytest.raises(HtpasswdError) as caught:
        Htpasswd(path)
    message = str(caught.value)
    assert f"{path} line 3" in message
    assert f"user 'bob' has {named}, which is fast to brute-force" in message
    assert f"runner passwd {path} bob" in message
    assert entry.split(":", 1)[1] not in message  # the hash itself is not echoed


@pytest.mark.parametrize("line", ["carol", "bad user:" + PINNED_12, ":" + PINNED_12])
def test_a_line_that_is_not_user_and_hash_is_refused(make_htpasswd, line):
    """A line without a colon, or whose user name is empty or has a blank, stops start-up."""
    path = make_htpasswd(alice="s3cret")
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(HtpasswdError, match=f"{path} line 2: expected USER:BCRYPT-HASH"):
        Htpasswd(path)


def test_duplicate_user_is_refused(make_htpasswd):
    """Two lines for one user are ambiguous and refused."""
    path = make_htpasswd(alice="one")
    path.write_text(path.read_text() * 2)
    with pytest.raises(HtpasswdError, match="line 2: user 'alice' appears twice"):
        Htpasswd(path)


def test_missing_file_is_refused(tmp_path):
    """A missing htpasswd file is a configuration error, not an open door."""
    with pytest.raises(HtpasswdError, match="does not exist"):
        Htpasswd(tmp_path / "nope")


def test_set_password_adds_then_updates_keeping_other_lines(make_htpasswd):
    """Adding appends a line; updating replaces the user's line and keeps the rest."""
    path = make_htpasswd(alice="one")
    path.write_text("# admins\n" + path.read_text())
    assert set_password(path, "bob", "two", cost=FAST) is True
    assert set_password(path, "alice", "three", cost=FAST) is False
    lines = path.read_text().splitlines()
    assert lines[0] == "# admins"
    assert [line.split(":")[0] for line in lines[1:]] == ["alice", "bob"]
    assert lines[1].split(":")[1].startswith("$2y$04$")  # Apache htpasswd -B's prefix
    users = Htpasswd(path)
    assert users.check("alice", "three") and not users.check("alice", "one")
    assert users.check("bob", "two")


def test_set_password_writes_mode_0600(tmp_path):
    """The file is private even under a permissive umask."""
    old = os.umask(0)
    try:
        path = tmp_path / "htpasswd"
        set_password(path, "alice", "one", cost=FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_password_leaves_the_old_file_when_the_write_fails(make_htpasswd, monkeypatch):
    """A failed rename leaves the old file whole and no temporary file behind."""
    path = make_htpasswd(alice="one")
    before = path.read_text()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        set_password(path, "alice", "two", cost=FAST)
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["htpasswd"]


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("al:ice", "pw", "user name"),
        ("", "pw", "user name"),
        ("#alice", "pw", "starts with '#'"),
        ("alice", "", "empty"),
        ("alice", "x" * 73, "72 bytes"),
        ("alice", "a\0b", "NUL"),
    ],
)
def test_set_password_refuses_unusable_input(tmp_path, user, password, reason):
    """Names that break the format and passwords bcrypt would mangle are refused."""
    with pytest.raises(ValueError, match=reason):
        set_password(tmp_path / "htpasswd", user, password, cost=FAST)


def test_a_user_name_may_hold_a_hash_sign_after_its_first_character(make_htpasswd):
    """Only a leading '#' makes a comment; 'ops#1' is a user like any other."""
    users = Htpasswd(make_htpasswd(**{"ops#1": "pw"}))
    assert users.check("ops#1", "pw") and users.users == ("ops#1",)


def test_passwords_up_to_72_bytes_are_set_and_checked(make_htpasswd):
    """A 72-byte password (bcrypt's limit) is accepted whole, and only it passes."""
    password = "é" * 36
    users = Htpasswd(make_htpasswd(alice=password))
    assert users.check("alice", password)
    assert not users.check("alice", "é" * 35 + "e")


def test_passwd_repairs_a_broken_line_of_the_user(make_htpasswd):
    """Setting the password of a user whose line lost its hash replaces that line."""
    path = make_htpasswd(alice="one")
    path.write_text(path.read_text() + "bob\n")
    with pytest.raises(HtpasswdError):
        Htpasswd(path)
    assert set_password(path, "bob", "two", cost=FAST) is False
    users = Htpasswd(path)
    assert users.check("bob", "two") and users.users == ("alice", "bob")


def test_a_changed_file_is_reloaded(make_htpasswd):
    """A user added while the server runs can log in at the next request."""
    path = make_htpasswd(alice="one")
    users = Htpasswd(path)
    assert not users.check("bob", "two")
    set_password(path, "bob", "two", cost=FAST)
    assert users.check("bob", "two")
    assert users.users == ("alice", "bob")


def test_after_a_reload_logins_are_cached_again(make_htpasswd, bcrypt_calls, caplog):
    """A reload clears the cache once; the next logins are cached as before, not each one
    re-read and re-hashed."""
    path = make_htpasswd(alice="one")
    users = Htpasswd(path)
    set_password(path, "bob", "two", cost=FAST)
    with caplog.at_level(logging.INFO, logger="runner.auth"):
        for _ in range(3):
            assert users.check("alice", "one")
    assert len(bcrypt_calls) == 1
    assert caplog.messages == ["htpasswd reloaded: 2 users"]


def test_a_cached_login_is_trusted_for_five_minutes(make_htpasswd, bcrypt_calls, clock):
    """By default a successful login is remembered for 300 s, then checked again."""
    users = Htpasswd(make_htpasswd(alice="one"), clock=clock.monotonic)
    assert users.check("alice", "one") and len(bcrypt_calls) == 1
    clock.advance(299.9)
    assert users.check("alice", "one") and len(bcrypt_calls) == 1
    clock.advance(0.1)
    assert users.check("alice", "one") and len(bcrypt_calls) == 2


def test_the_cache_forgets_the_least_recent_login(make_htpasswd, bcrypt_calls):
    """Past cache_size logins, the least recently used one costs a bcrypt check again."""
    users = Htpasswd(make_htpasswd(alice="a", bob="b", carol="c"), cache_size=2)
    for user in ("alice", "bob", "carol"):
        assert users.check(user, user[0])
    assert len(bcrypt_calls) == 3
    assert users.check("carol", "c") and users.check("bob", "b")
    assert len(bcrypt_calls) == 3
    assert users.check("alice", "a")
    assert len(bcrypt_calls) == 4


def test_unknown_users_cost_a_full_cost_12_check(tmp_path, bcrypt_calls):
    """At the production cost an unknown user is checked against a cost-12 hash, on a file
    with no users yet and after one with a cost-12 user is loaded: no timing tells names
    apart. (Two bcrypt operations at cost 12: about half a second.)"""
    path = tmp_path / "htpasswd"
    path.write_text("# no users yet\n")
    users = Htpasswd(path)
    path.write_text(f"alice:{PINNED_12}\n")
    assert not users.check("mallory", "s3cret")
    assert [h[:7] for h in bcrypt_calls] == [b"$2b$12$"]


def test_a_reload_keeps_unknown_users_as_slow_as_the_costliest_entry(make_htpasswd, bcrypt_calls):
    """When a costlier entry is added the dummy check follows it up; when all users are
    removed it stays where it was."""
    path = make_htpasswd(alice="one")
    users = Htpasswd(path)
    set_password(path, "bob", "two", cost=FAST + 1)
    assert not users.check("mallory", "x")
    path.write_text("# everyone removed\n")
    assert not users.check("mallory", "x")
    assert not users.check("alice", "one")
    assert [h[4:6] for h in bcrypt_calls] == [b"05", b"05", b"05"]


def test_a_changed_password_invalidates_the_cache(make_htpasswd, bcrypt_calls):
    """A cached success skips bcrypt, but not once the user's password changed."""
    path = make_htpasswd(alice="one")
    users = Htpasswd(path)
    assert users.check("alice", "one") and len(bcrypt_calls) == 1
    assert users.check("alice", "one") and len(bcrypt_calls) == 1
    set_password(path, "alice", "two", cost=FAST)
    assert not users.check("alice", "one")
    assert users.check("alice", "two")


def test_a_file_turned_invalid_refuses_everyone(make_htpasswd, caplog):
    """An unusable edit fails closed (and says so in the log) until it is fixed."""
    path = make_htpasswd(alice="one")
    users = Htpasswd(path)
    path.write_text(path.read_text() + "bob:$apr1$x$y\n")
    assert not users.check("alice", "one")
    assert "refusing every user" in caplog.text
    assert f"{path} line 2: user 'bob' has an MD5" in caplog.text
    set_password(path, "bob", "two", cost=FAST)
    assert users.check("alice", "one")


def test_repr_shows_no_hash(make_htpasswd):
    """The repr names the file and a count, nothing secret."""
    users = Htpasswd(make_htpasswd(alice="one"))
    assert repr(users) == f"Htpasswd({str(users.path)!r}, users=1)"


def _args(path, user, *, from_stdin):
    return SimpleNamespace(file=path, user=user, stdin=from_stdin, cost=FAST)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_passwd_command_reads_stdin(tmp_path):
    """``runner passwd FILE USER --stdin`` takes one line from stdin."""
    path = tmp_path / "htpasswd"
    code = passwd_command(_args(path, "ci", from_stdin=True), stdin=io.StringIO("pw word\n"))
    assert code == 0
    assert Htpasswd(path).check("ci", "pw word")


def test_passwd_command_asks_twice_on_a_tty(tmp_path, capsys):
    """On a terminal the password is asked twice; a mismatch changes nothing."""
    path = tmp_path / "htpasswd"
    answers = iter(["one", "two"])
    args = _args(path, "alice", from_stdin=False)
    assert passwd_command(args, stdin=_Tty(), ask=lambda _: next(answers)) == 1
    assert "differ" in capsys.readouterr().err and not path.exists()
    assert passwd_command(args, stdin=_Tty(), ask=lambda _: "same") == 0
    assert Htpasswd(path).check("alice", "same")


def test_passwd_command_refuses_a_pipe_without_stdin_flag(tmp_path, capsys):
    """Piped input without --stdin is refused rather than echoed by getpass."""
    args = _args(tmp_path / "htpasswd", "alice", from_stdin=False)
    assert passwd_command(args, stdin=io.StringIO("pw\n")) == 2
    assert "--stdin" in capsys.readouterr().err


def test_module_default_cost_is_twelve():
    """Production hashes use cost 12 unless told otherwise."""
    assert htpasswd_module.DEFAULT_COST == 12

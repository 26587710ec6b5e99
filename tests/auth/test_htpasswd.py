"""Users from an htpasswd file: bcrypt only, reloaded on change, written atomically."""

from __future__ import annotations

import io
import os
import stat
from types import SimpleNamespace

import pytest

from runner.auth import htpasswd as htpasswd_module
from runner.auth.cli import passwd_command
from runner.auth.htpasswd import Htpasswd, HtpasswdError, set_password

from .conftest import FAST


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
        ("bob:$apr1$Vt4/8TKL$9L/MvQ9Eu3EH7bj0fOHbR/", "MD5"),
        ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
        ("bob:$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMu", "crypt"),
        ("bob:rl0uE0yJXfyAw", "DES"),
        ("bob:letmein", "plain-text"),
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
    assert named in message and "brute-force" in message
    assert f"runner passwd {path} bob" in message
    assert entry.split(":", 1)[1] not in message  # the hash itself is not echoed


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
        ("alice", "", "empty"),
        ("alice", "x" * 73, "72 bytes"),
        ("alice", "a\0b", "NUL"),
    ],
)
def test_set_password_refuses_unusable_input(tmp_path, user, password, reason):
    """Names that break the format and passwords bcrypt would mangle are refused."""
    with pytest.raises(ValueError, match=reason):
        set_password(tmp_path / "htpasswd", user, password, cost=FAST)


def test_a_changed_file_is_reloaded(make_htpasswd):
    """A user added while the server runs can log in at the next request."""
    path = make_htpasswd(alice="one")
    users = Htpasswd(path)
    assert not users.check("bob", "two")
    set_password(path, "bob", "two", cost=FAST)
    assert users.check("bob", "two")
    assert users.users == ("alice", "bob")


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
    set_password(path, "bob", "two", cost=FAST)
    assert users.check("alice", "one")


def test_repr_shows_no_hash(make_htpasswd):
    """The repr names the file and a count, nothing secret."""
    users = Htpasswd(make_htpasswd(alice="one"))
    assert repr(users).endswith("users=1)") and "$2" not in repr(users)


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

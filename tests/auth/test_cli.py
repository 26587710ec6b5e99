"""The passwd and token subcommands as argparse sees them, the way runner.cli wires them."""

from __future__ import annotations

import argparse
import io

from runner import cli
from runner.auth.cli import passwd_command, token_command
from runner.auth.htpasswd import Htpasswd
from runner.auth.tokens import TokenStore


def parser() -> argparse.ArgumentParser:
    return cli.parser()


def test_passwd_from_the_command_line(tmp_path):
    """``runner passwd FILE USER --stdin`` adds the user."""
    path = tmp_path / "htpasswd"
    args = parser().parse_args(["passwd", str(path), "alice", "--stdin", "--cost", "4"])
    assert passwd_command(args, stdin=io.StringIO("pw\n")) == 0
    assert Htpasswd(path).check("alice", "pw")


def test_token_create_from_the_command_line(tmp_path, capsys):
    """``runner token create NAME --may-run P --may-run Q --expires 30d --state-dir D``:
    options after the subcommand, both patterns stored in D's store."""
    state = tmp_path / "state"
    argv = ["token", "create", "ci", "--may-run", "deploy/*", "--may-run", "vm/create"]
    assert cli.main([*argv, "--expires", "30d", "--state-dir", str(state)]) == 0
    info = TokenStore(state / "tokens.json").verify(capsys.readouterr().out.strip())
    assert info is not None and info.jobs == ("deploy/*", "vm/create") and info.expires
    path = tmp_path / "tokens.json"
    args = parser().parse_args(["token", "revoke", "ci", "--store", str(state / "tokens.json")])
    assert token_command(args) == 0 and TokenStore(state / "tokens.json").list() == []
    assert not path.exists()


def test_the_first_spelling_of_may_run_still_works_and_says_so(tmp_path, capsys):
    """``--jobs PATTERN`` on token create is taken as --may-run, with a note on stderr."""
    store = tmp_path / "t.json"
    assert cli.main(["token", "--store", str(store), "create", "ci", "--jobs", "deploy/*"]) == 0
    out = capsys.readouterr()
    assert "--may-run" in out.err
    assert TokenStore(store).verify(out.out.strip()).jobs == ("deploy/*",)

"""The passwd and token subcommands as argparse sees them, the way runner.cli wires them."""

from __future__ import annotations

import argparse
import io

from runner.auth.cli import (
    add_passwd_arguments,
    add_token_arguments,
    passwd_command,
    token_command,
)
from runner.auth.htpasswd import Htpasswd
from runner.auth.tokens import TokenStore


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="runner")
    sub = top.add_subparsers(dest="command", required=True)
    add_passwd_arguments(sub.add_parser("passwd"))
    token = sub.add_parser("token")
    # As runner.cli's _common does: --jobs DIR on the parent must not swallow the patterns.
    token.add_argument("--jobs", action="append", metavar="DIR")
    add_token_arguments(token)
    return top


def test_passwd_from_the_command_line(tmp_path):
    """``runner passwd FILE USER --stdin`` adds the user."""
    path = tmp_path / "htpasswd"
    args = parser().parse_args(["passwd", str(path), "alice", "--stdin", "--cost", "4"])
    assert passwd_command(args, stdin=io.StringIO("pw\n")) == 0
    assert Htpasswd(path).check("alice", "pw")


def test_token_create_from_the_command_line(tmp_path, capsys):
    """``runner token create NAME --jobs P --jobs Q --expires 30d`` stores both patterns."""
    path = tmp_path / "tokens.json"
    argv = ["token", "create", "ci", "--jobs", "deploy/*", "--jobs", "vm/create"]
    args = parser().parse_args([*argv, "--expires", "30d"])
    assert args.jobs is None
    assert token_command(args, default_store=path) == 0
    info = TokenStore(path).verify(capsys.readouterr().out.strip())
    assert info is not None and info.jobs == ("deploy/*", "vm/create") and info.expires
    args = parser().parse_args(["token", "--store", str(path), "revoke", "ci"])
    assert token_command(args) == 0 and TokenStore(path).list() == []

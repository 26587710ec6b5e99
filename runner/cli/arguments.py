"""The arguments of ``runner passwd`` and ``runner token`` (their commands are in
``runner.auth.cli``, imported only when they run: bcrypt is not loaded for other commands)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def add_passwd_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``runner passwd FILE USER [--stdin]``."""
    p.add_argument("file", type=Path, help="htpasswd file (created 0600 if absent)")
    p.add_argument("user", help="user name to add or update")
    p.add_argument("--stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--cost", type=int, default=None, help=argparse.SUPPRESS)


class _Deprecated(argparse._AppendAction):
    """``token create --jobs P``: taken as ``--may-run P``, with a note on stderr."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        print("runner: token create --jobs is now --may-run (--jobs names job folders)",
              file=sys.stderr)  # fmt: skip
        super().__call__(parser, namespace, values, option)


def add_token_arguments(
    p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """Arguments of ``runner token create|list|revoke``; ``parents`` give each of them the
    command line's common options, so that they may come after the subcommand."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        type=Path,
        default=argparse.SUPPRESS,
        help="token store (default STATE_DIR/tokens.json)",
    )
    everywhere = [store, *parents]
    p.add_argument("--store", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="token_command", required=True)
    create = sub.add_parser(
        "create", help="create a token and print it (the only time)", parents=everywhere
    )
    create.add_argument("name", help="a name for the token, e.g. ci-deploy")
    create.add_argument(
        "--may-run",
        dest="patterns",
        action="append",
        metavar="PATTERN",
        help="jobs it may run, e.g. 'deploy/*', 'vm/create', '**' (repeatable)",
    )
    # The first spelling, still taken: elsewhere --jobs names job folders, so it is on its way out.
    create.add_argument("--jobs", dest="patterns", action=_Deprecated, help=argparse.SUPPRESS)
    create.add_argument("--expires", help="e.g. 30d, 12h, 2w or 2026-12-31 (default never)")
    listing = sub.add_parser(
        "list", help="list tokens (names and patterns, never tokens)", parents=everywhere
    )
    listing.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="revoke a token by name", parents=everywhere)
    revoke.add_argument("name")

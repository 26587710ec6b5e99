"""The ``runner passwd`` and ``runner token`` commands.

``add_passwd_arguments`` / ``add_token_arguments`` fill a subparser; ``passwd_command`` /
``token_command`` run it and return the exit status. Secrets are read with getpass (never
echoed, never in argv where ``ps`` and shell history would keep them) or from stdin with
``--stdin`` for scripts.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from runner.auth.htpasswd import DEFAULT_COST, set_password
from runner.auth.tokens import TokenStore, TokenStoreError, parse_expiry


def add_passwd_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``runner passwd FILE USER [--stdin]``."""
    p.add_argument("file", type=Path, help="htpasswd file (created 0600 if absent)")
    p.add_argument("user", help="user name to add or update")
    p.add_argument("--stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--cost", type=int, default=DEFAULT_COST, help=argparse.SUPPRESS)


def passwd_command(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    ask: Callable[[str], str] = getpass.getpass,
) -> int:
    """Add or update a user's bcrypt entry; the password twice from a TTY or once on stdin."""
    stdin = stdin or sys.stdin
    if args.stdin:
        password = stdin.readline().rstrip("\r\n")
    elif not stdin.isatty():
        # getpass would fall back to echoing stdin; be explicit instead.
        print("runner: stdin is not a terminal; pass --stdin to read it", file=sys.stderr)
        return 2
    else:
        password = ask(f"New password for {args.user}: ")
        if ask("Again: ") != password:
            print("runner: the passwords differ; nothing changed", file=sys.stderr)
            return 1
    try:
        new = set_password(args.file, args.user, password, cost=args.cost)
    except (ValueError, OSError) as exc:
        print(f"runner: {exc}; nothing changed", file=sys.stderr)
        return 1
    print(f"{'added' if new else 'updated'} {args.user} in {args.file}", file=sys.stderr)
    return 0


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


def token_command(args: argparse.Namespace, *, default_store: Path | None = None) -> int:
    """Run ``runner token create|list|revoke`` against ``--store`` or ``default_store``."""
    path = getattr(args, "store", None) or default_store
    if path is None:
        print("runner: give --store FILE", file=sys.stderr)
        return 2
    try:
        return _token(args, TokenStore(path))
    except TokenStoreError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2


def _token(args: argparse.Namespace, store: TokenStore) -> int:
    if args.token_command == "create":
        if not args.patterns:
            print("runner: give the jobs it may run: --may-run 'deploy/*'", file=sys.stderr)
            return 2
        expires = parse_expiry(args.expires, datetime.now(UTC)) if args.expires else None
        token = store.create(args.name, args.patterns, expires)
        print(token)
        print(
            f"token {args.name!r} created; it is shown only now: keep it in your CI's secret "
            "store and send it as 'Authorization: Bearer <token>'",
            file=sys.stderr,
        )
        return 0
    if args.token_command == "list":
        infos = store.list()
        if args.json:
            rows = [
                {
                    "name": i.name,
                    "jobs": list(i.jobs),
                    "created": i.created.isoformat(),
                    "expires": i.expires.isoformat() if i.expires else None,
                }
                for i in infos
            ]
            print(json.dumps(rows, indent=2))
            return 0
        now = datetime.now(UTC)
        for i in infos:
            expiry = "never" if i.expires is None else i.expires.isoformat()
            flag = "  (expired)" if i.expired(now) else ""
            print(
                f"{i.name}\t{','.join(i.jobs)}\tcreated {i.created.isoformat()}\t"
                f"expires {expiry}{flag}"
            )
        return 0
    if store.revoke(args.name):
        print(f"revoked {args.name}", file=sys.stderr)
        return 0
    print(f"runner: no token named {args.name!r}", file=sys.stderr)
    return 1

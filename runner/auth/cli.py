"""The ``runner passwd`` and ``runner token`` commands.

``passwd_command`` / ``token_command`` run them and return the exit status (their
arguments are declared with the rest of the command line, in ``runner.cli.arguments``).
Secrets are read with getpass (never echoed, never in argv where ``ps`` and shell history
would keep them) or from stdin with ``--stdin`` for scripts.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from runner.auth.htpasswd import DEFAULT_COST, set_password
from runner.auth.tokens import TokenStore, TokenStoreError, parse_expiry


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
        new = set_password(args.file, args.user, password, cost=args.cost or DEFAULT_COST)
    except (ValueError, OSError) as exc:
        print(f"runner: {exc}; nothing changed", file=sys.stderr)
        return 1
    print(f"{'added' if new else 'updated'} {args.user} in {args.file}", file=sys.stderr)
    return 0


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

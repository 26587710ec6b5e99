"""A chat command's text: ``JOB name=value …``, ``JOB --help``, or ``help``.

Quoting is the shell's (POSIX ``shlex``): ``vm/create vmname=web1 tags="a b"`` gives
``tags`` the value ``a b``; a quote inside a value is escaped with ``\\`` or put in the
other kind of quotes. Chat clients turn typed quotes into typographic ones (“ ” ‘ ’) and
Slack escapes ``& < >`` and wraps links as ``<https://…|label>``: all are undone first, so
what the person typed is what is parsed. A leading ``/`` on the job is optional.
"""

from __future__ import annotations

import html
import re
import shlex
from dataclasses import dataclass, field

from runner.errors import BadRequest

HELP_WORDS = frozenset({"", "help", "-h", "--help", "?"})
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SMART = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})


@dataclass(frozen=True)
class Command:
    """What the text asks: ``job`` None is the general help; ``help`` a job's help."""

    job: str | None
    params: dict[str, str] = field(default_factory=dict)
    help: bool = False


def parse(text: str) -> Command:
    """The command in ``text``, or BadRequest saying what is wrong and how to write it."""
    clean = _LINK.sub(r"\1", html.unescape(text)).translate(_SMART).strip()
    if clean.lower() in HELP_WORDS:
        return Command(None, help=True)
    try:
        words = shlex.split(clean)
    except ValueError as exc:
        raise BadRequest(f"cannot read the command: {exc} (close each quote you open)") from None
    job, *rest = words
    job = job.strip("/")
    if rest and rest[-1] in ("-h", "--help", "help"):
        return Command(job, help=True)
    params: dict[str, str] = {}
    for word in rest:
        name, sep, value = word.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise BadRequest(
                f"{word!r} is not name=value: write parameters as name=value, quoting a "
                f'value with spaces (tags="a b"); `{job} --help` lists them'
            )
        if name in params:
            raise BadRequest(f"{name} is given twice")
        params[name] = value
    return Command(job, params)

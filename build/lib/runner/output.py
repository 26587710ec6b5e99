"""Output lines: how a job's text becomes events, and how secrets are kept out of it.

Every path by which a job's text reaches the run's log goes through here: a Python job's
``ctx.print``/``ctx.error``, a script's pipes, and the failure text of either.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_LINE = 64 * 1024  # longer lines are split: one event stays a bounded size
MASK = "***"


def masker(secrets: list[str]) -> Callable[[str], str]:
    """A function replacing each secret value in a line with ``***``."""
    # Very short values would mask ordinary text everywhere; they are no secret anyway.
    values = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
    if not values:
        return lambda line: line

    def mask(line: str) -> str:
        for value in values:
            if value in line:
                line = line.replace(value, MASK)
        return line

    return mask


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` without terminators; over-long lines cut into MAX_LINE pieces."""
    out = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        while len(line) > MAX_LINE:
            out.append(line[:MAX_LINE])
            line = line[MAX_LINE:]
        out.append(line)
    return out

"""Output lines: how a job's text becomes events, and how secrets are kept out of it.

Every path by which a job's text reaches the run's log goes through here: a Python job's
``ctx.print``/``ctx.error``, a script's pipes, and the failure text of either.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_LINE = 64 * 1024  # longer lines are split: one event stays a bounded size
MASK = "***"


class Mask:
    """Replaces each secret value of a run in a line with ``***``; a secret the run gets
    while it runs (``ctx.secret``) is added to it."""

    __slots__ = ("_values",)

    def __init__(self, secrets: list[str]) -> None:
        self._values: list[str] = []
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        # Very short values would mask ordinary text everywhere; they are no secret anyway.
        if len(value) >= 3 and value not in self._values:
            self._values = sorted([*self._values, value], key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for value in self._values:
            if value in line:
                line = line.replace(value, MASK)
        return line


def masker(secrets: list[str]) -> Callable[[str], str]:
    """A function replacing each secret value in a line with ``***`` (a :class:`Mask`)."""
    return Mask(secrets)


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

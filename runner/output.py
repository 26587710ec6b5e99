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

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self._values)

    def __call__(self, line: str) -> str:
        for value in self._values:
            if value in line:
                line = line.replace(value, MASK)
        return line


class Carry:
    """One long line that arrives in pieces (a script's line cut every MAX_LINE bytes),
    masked as a whole: of each piece, the end that could begin a secret the next piece
    finishes is held back and shown with the next one.

    Every piece shown is the text up to a cut that no secret crosses — at most the
    longest secret's length before the piece's end — so what is held stays small.
    """

    def __init__(self, mask: Callable[[str], str]) -> None:
        self.mask = mask
        self.held = ""

    def feed(self, piece: str, *, last: bool) -> str:
        """The masked text that can be shown now; ``last``: the line ends with this piece."""
        text = self.held + piece
        values = self.mask.values if isinstance(self.mask, Mask) else ()
        if last or not values:
            self.held = ""
            return self.mask(text)
        cut = _uncrossed(text, values)
        self.held = text[cut:]
        return self.mask(text[:cut])


def _uncrossed(text: str, values: tuple[str, ...]) -> int:
    """A cut near the end of ``text`` that no occurrence of a value crosses: a secret that
    could still continue in the next piece stays after it, whole."""
    cut = max(0, len(text) - (max(map(len, values)) - 1))
    moved = True
    while moved:
        moved = False
        for value in values:
            start = text.find(value, max(0, cut - len(value) + 1), cut + len(value) - 1)
            if start != -1 and start < cut:
                cut, moved = start, True
    return cut


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

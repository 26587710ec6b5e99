"""ARM template language expressions: ``"[concat(parameters('p'), '-nic')]"``.

A JSON string that starts with ``[`` and ends with ``]`` is an expression (``[[`` escapes a
literal ``[``). The language is function calls, single-quoted strings (``''`` escapes a
quote), integers, ``true``/``false``/``null``, ``.property`` and ``[index]`` access: a
recursive-descent parser of ~80 lines, not worth a parser-generator dependency.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Access",
    "Call",
    "Literal",
    "Node",
    "TemplateError",
    "calls",
    "evaluate",
    "is_expression",
    "parse",
]


class TemplateError(Exception):
    """A template that ARM would refuse (answered as 400 InvalidTemplate)."""


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Access:
    target: Node
    key: Node  # a Literal property name or an index expression


Node = Literal | Call | Access

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w]*)"
    r"|(?P<punct>[().,\[\]]))"
)


def is_expression(value: Any) -> bool:
    """Whether a template string is an expression rather than a literal."""
    return (
        isinstance(value, str)
        and value.startswith("[")
        and value.endswith("]")
        and not value.startswith("[[")
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.lastgroup is None:
            raise TemplateError(f"The language expression '{text}' is not valid at {pos}.")
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        tok = self._peek()
        if tok is None or (value is not None and tok[1] != value):
            raise TemplateError(
                f"The language expression '{self.text}' is not valid: expected "
                f"'{value or 'a value'}'."
            )
        self.i += 1
        return tok

    def expr(self) -> Node:
        node = self.primary()
        while (tok := self._peek()) and tok[1] in (".", "["):
            self._take()
            if tok[1] == ".":
                node = Access(node, Literal(self._take()[1]))
            else:
                node = Access(node, self.expr())
                self._take("]")
        return node

    def primary(self) -> Node:
        kind, value = self._take()
        if kind == "str":
            return Literal(value[1:-1].replace("''", "'"))
        if kind == "num":
            return Literal(float(value) if "." in value else int(value))
        if kind == "name":
            if (nxt := self._peek()) and nxt[1] == "(":
                self._take("(")
                args: list[Node] = []
                if (tok := self._peek()) and tok[1] != ")":
                    args.append(self.expr())
                    while (tok := self._peek()) and tok[1] == ",":
                        self._take(",")
                        args.append(self.expr())
                self._take(")")
                return Call(value.lower(), tuple(args))
            constants = {"true": True, "false": False, "null": None}
            if value.lower() in constants:
                return Literal(constants[value.lower()])
        raise TemplateError(f"The language expression '{self.text}' is not valid near '{value}'.")


def parse(text: str) -> Node:
    """Parse the inside of ``[...]``."""
    parser = _Parser(text)
    node = parser.expr()
    if parser._peek() is not None:
        raise TemplateError(f"The language expression '{text}' has trailing characters.")
    return node


def calls(node: Node) -> Iterator[Call]:
    """Every function call in an expression tree (to check names before running)."""
    if isinstance(node, Call):
        yield node
        for arg in node.args:
            yield from calls(arg)
    elif isinstance(node, Access):
        yield from calls(node.target)
        yield from calls(node.key)


Functions = dict[str, Callable[..., Any]]
# Functions that decide themselves whether to evaluate their arguments (if).
Lazy = dict[str, Callable[[Callable[[Node], Any], tuple[Node, ...]], Any]]


def evaluate(node: Node, functions: Functions, lazy: Lazy | None = None) -> Any:
    """The value of an expression tree."""

    def run(n: Node) -> Any:
        if isinstance(n, Literal):
            return n.value
        if isinstance(n, Access):
            target, key = run(n.target), run(n.key)
            try:
                if isinstance(target, dict):
                    found = {str(k).lower(): v for k, v in target.items()}
                    return found[str(key).lower()]
                return target[int(key)]
            except (KeyError, IndexError, TypeError, ValueError):
                raise TemplateError(
                    f"The language expression property '{key}' doesn't exist."
                ) from None
        if lazy and n.name in lazy:
            return lazy[n.name](run, n.args)
        function = functions.get(n.name)
        if function is None:
            raise TemplateError(
                f"The template function '{n.name}' is not valid. Please see "
                "https://aka.ms/arm-functions for usage details."
            )
        values = [run(a) for a in n.args]
        try:
            return function(*values)
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
            raise TemplateError(
                f"Unable to evaluate template language function '{n.name}': {exc}."
            ) from None

    return run(node)

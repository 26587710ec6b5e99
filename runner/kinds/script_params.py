"""The parameters a script declares in its header, one ``# runner-param:`` line each::

    # runner-param: rg required pattern=^[a-z0-9-]+$ -- the resource group
    # runner-param: size choices=small,large default=small
    # runner-param: token secret

After the name: the words ``required`` and ``secret``; ``pattern=REGEX`` (searched, as in
JSON Schema: anchor it with ``^…$``), ``choices=a,b,c``, ``default=VALUE`` and
``description=TEXT``; a value with spaces in double or single quotes; and after ``--``,
the description. A script that declares parameters takes only those, each checked before
any run exists; one that declares none takes any name (webhookd style).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.errors import ParameterProblem
from runner.params import PARAM_NAME, REDACTED

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<rest>--(?:\s+(?P<description>.*))?$)          # -- the description
      | (?P<key>[a-z][a-z-]*)=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>\S+))
      | (?P<word>\S+)
    )""",
    re.VERBOSE,
)
_FLAGS = ("required", "secret")
_KEYS = ("pattern", "choices", "default", "description")


class DeclarationError(ValueError):
    """A ``# runner-param:`` line that cannot be used; the message says why."""


@dataclass(frozen=True)
class ScriptParam:
    """One declared parameter of a script (all values are text: they become env vars)."""

    name: str
    required: bool = False
    secret: bool = False
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    default: str | None = None
    description: str = ""

    @classmethod
    def parse(cls, text: str) -> ScriptParam:
        """A declaration from the text after ``runner-param:``."""
        words: list[str] = []
        keys: dict[str, str] = {}
        pos, text = 0, text.strip()
        while pos < len(text):
            found = _TOKEN.match(text, pos)
            if found is None:  # pragma: no cover - the pattern matches any non-space run
                break
            pos = found.end()
            if found["rest"] is not None:
                keys.setdefault("description", (found["description"] or "").strip())
                break
            if found["key"] is not None:
                key = found["key"]
                if key not in _KEYS:
                    raise DeclarationError(f"unknown key {key}=; keys are {', '.join(_KEYS)}")
                if key in keys:
                    raise DeclarationError(f"{key}= given twice")
                keys[key] = next(
                    v for v in (found["dq"], found["sq"], found["bare"]) if v is not None
                )
            else:
                words.append(found["word"])
        if not words:
            raise DeclarationError("give the parameter's name first")
        name, flags = words[0], words[1:]
        unknown = [w for w in flags if w not in _FLAGS]
        if unknown:
            raise DeclarationError(
                f"unknown word {unknown[0]!r}: after the name come required, secret, "
                f"{'=, '.join(_KEYS)}= and -- description"
            )
        choices = tuple(c.strip() for c in keys["choices"].split(",")) if "choices" in keys else ()
        param = cls(
            name=name,
            required="required" in flags,
            secret="secret" in flags,
            pattern=keys.get("pattern"),
            choices=choices,
            default=keys.get("default"),
            description=keys.get("description", ""),
        )
        param._check_declaration()
        return param

    def _check_declaration(self) -> None:
        if not PARAM_NAME.match(self.name) or self.name.startswith("_"):
            raise DeclarationError(f"{self.name!r} is not a parameter name ([a-z][a-z0-9_]*)")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise DeclarationError(
                    f"pattern={self.pattern} is no regular expression: {exc}"
                ) from None
        if self.choices and not all(self.choices):
            raise DeclarationError("choices= lists values separated by commas")
        if self.required and self.default is not None:
            raise DeclarationError("a required parameter has no default")
        if self.default is not None:
            why = self.check(self.default)
            if why is not None:
                raise DeclarationError(f"the default {self.default!r} {why}")

    def with_secret(self) -> ScriptParam:
        """The same parameter marked secret (``# runner-secret:`` names it too)."""
        return ScriptParam(
            self.name, self.required, True, self.pattern, self.choices, self.default,
            self.description,
        )  # fmt: skip

    def check(self, value: str) -> str | None:
        """Why ``value`` is refused, or None (a secret's value is never quoted)."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.pattern is not None and re.search(self.pattern, value) is None:
            return f"must match {self.pattern}"
        return None

    def schema(self) -> dict[str, Any]:
        prop: dict[str, Any] = {"type": "string"}
        if self.choices:
            prop["enum"] = list(self.choices)
        if self.pattern is not None:
            prop["pattern"] = self.pattern
        if self.description:
            prop["description"] = self.description
        if self.secret:
            prop["writeOnly"] = True
            prop["x-secret"] = True
        elif self.default is not None:
            # A secret's default stays in the script: a description is shown to anyone.
            prop["default"] = self.default
        return prop


@dataclass(frozen=True)
class Declared:
    """All the parameters a script declares, in header order."""

    params: tuple[ScriptParam, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.params},
            "additionalProperties": False,
        }
        required = [p.name for p in self.params if p.required]
        if required:
            schema["required"] = required
        return schema

    def validate(self, raw: Mapping[str, str], problems: list[ParameterProblem]) -> dict[str, str]:
        """The script's environment parameters: each given value checked, defaults filled
        in; an empty value counts as not given. Problems are added to ``problems``."""
        takes = ", ".join(self.names)
        for name in raw:
            if name not in self.names and PARAM_NAME.match(name):
                problems.append(
                    ParameterProblem(name, f"unknown parameter; this job takes: {takes}")
                )
        values: dict[str, str] = {}
        for param in self.params:
            value = raw.get(param.name) or None
            if value is None:
                if param.required:
                    problems.append(ParameterProblem(param.name, "required"))
                elif param.default is not None:
                    values[param.name] = param.default
                continue
            why = param.check(value)
            if why is not None:
                problems.append(ParameterProblem(param.name, why))
            values[param.name] = value
        return values

    def redact(self, values: Mapping[str, str]) -> dict[str, str]:
        secret = {p.name for p in self.params if p.secret}
        return {k: REDACTED if k in secret else v for k, v in values.items()}

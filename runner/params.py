"""Job parameters: declared by a Python job's ``run`` signature, validated before a run exists.

A job writes ordinary annotated keyword parameters::

    async def run(ctx, rg: Annotated[str, Param(pattern=RG_PATTERN)], count: int = 1,
                  size: Literal["small", "large"] = "small", pw: Secret | None = None): ...

pydantic does the type work (coercion of query-string text, patterns, ranges, choices,
every error at once, JSON Schema); this module adds what a webhook runner needs around it:
limits on count and size, refusal of control characters, and secrets that never leave.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import ConfigDict, SecretStr
from pydantic import Field as Param
from pydantic import SecretStr as Secret

from runner.errors import ConfigError, JobLoadError, ParameterError, ParameterProblem
from runner.secrets import is_reference, parse_reference

# What a job declares its parameters with (exported from ``runner``): ``Param`` is
# pydantic's ``Field`` (pattern, ge/le, min_length/max_length, description); ``Secret`` is
# pydantic's ``SecretStr``: never recorded, logged, streamed or shown, read with
# ``.get_secret_value()``.
__all__ = ["REDACTED", "Limits", "Param", "ParamSpec", "Secret", "check_raw"]

# Shown instead of a secret wherever a parameter value is recorded or displayed.
REDACTED = "***"

# C0 controls, DEL, the C1 block and the Unicode line and paragraph separators (which end
# a line in JavaScript and in some log viewers); TAB is the one control a sane value holds.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Limits:
    """Bounds applied to every job's raw parameters."""

    max_params: int = 64
    max_param_bytes: int = 8192


def check_raw(job: str, raw: Mapping[str, Any], limits: Limits) -> list[ParameterProblem]:
    """Checks that apply to any job: count, size, control characters, names."""
    problems: list[ParameterProblem] = []
    if len(raw) > limits.max_params:
        problems.append(
            ParameterProblem("*", f"{len(raw)} parameters given; at most {limits.max_params}")
        )
        return problems
    for name, value in raw.items():
        if not PARAM_NAME.match(name):
            shown = name[:64].encode("unicode_escape").decode()
            problems.append(
                ParameterProblem(shown, "not a valid parameter name (lowercase a-z, 0-9, _)")
            )
            continue
        if isinstance(value, str):
            if len(value.encode()) > limits.max_param_bytes:
                problems.append(
                    ParameterProblem(name, f"longer than {limits.max_param_bytes} bytes")
                )
            elif _CONTROL.search(value):
                problems.append(ParameterProblem(name, "contains control characters"))
        elif isinstance(value, dict | list):
            problems.append(ParameterProblem(name, "must be a single value, not an object or list"))
    return problems


def _is_secret(annotation: Any) -> bool:
    """True for ``Secret``, ``Secret | None`` and ``Annotated[Secret, …]``."""
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_secret(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


# A secret parameter's default may name where the value lives instead of being one.
SOURCE_PREFIXES = ("keyvault:", "env:", "file:")


def _source_default(name: str, default: Any) -> str | None:
    """The source a secret's default names (``keyvault:https://…``), or None."""
    text = default.get_secret_value() if isinstance(default, SecretStr) else default
    if not isinstance(text, str) or not text.startswith(SOURCE_PREFIXES):
        return None
    if is_reference(text):
        try:
            parse_reference(text)
        except ConfigError as exc:
            raise JobLoadError(f"the default of {name!r}: {exc}") from None
    return text


@dataclass(frozen=True)
class ParamSpec:
    """The parameters of one Python job, built once when the job is loaded."""

    job: str
    model: type[pydantic.BaseModel]
    secrets: frozenset[str]
    names: tuple[str, ...]
    # Secret parameters whose default is a source (keyvault:…, env:…, file:…): read by
    # the runner when a request does not give them (runner.service.Runs.start).
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_function(cls, job: str, fn: Callable[..., Any]) -> ParamSpec:
        """Read ``fn(ctx, **params)``'s keyword parameters into a validating model."""
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise JobLoadError(f"cannot resolve the type hints of run(): {exc}") from exc
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise JobLoadError("run() must take the context as its first parameter")
        fields: dict[str, Any] = {}
        secrets = set()
        sources: dict[str, str] = {}
        for p in params[1:]:
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise JobLoadError("run() cannot take *args or **kwargs: declare each")
            if not PARAM_NAME.match(p.name) or p.name.startswith("_"):
                raise JobLoadError(f"parameter {p.name!r} must match [a-z][a-z0-9_]*")
            if p.name not in hints:
                raise JobLoadError(f"parameter {p.name!r} needs a type annotation")
            annotation = hints[p.name]
            default = ... if p.default is inspect.Parameter.empty else p.default
            if _is_secret(annotation):
                secrets.add(p.name)
                source = _source_default(p.name, default)
                if source is not None:
                    # Never the source itself as a value: not given and not read is None.
                    sources[p.name], default = source, None
            fields[p.name] = (annotation, default)
        config = ConfigDict(extra="forbid", str_strip_whitespace=False, hide_input_in_errors=True)
        try:
            model = pydantic.create_model(
                "Params_" + re.sub(r"\W", "_", job), __config__=config, **fields
            )
        except Exception as exc:
            raise JobLoadError(f"unusable parameter declaration: {exc}") from exc
        return cls(job, model, frozenset(secrets), tuple(fields), sources)

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validated values, or :class:`ParameterError` listing every problem."""
        try:
            parsed = self.model.model_validate(dict(raw))
        except pydantic.ValidationError as exc:
            raise ParameterError(self.job, [self._problem(e) for e in exc.errors()]) from None
        return {name: getattr(parsed, name) for name in self.names}

    def _problem(self, error: Any) -> ParameterProblem:
        loc = error.get("loc") or ("*",)
        name = str(loc[0])
        kind = error.get("type", "")
        if kind == "missing":
            return ParameterProblem(name, "required")
        if kind == "extra_forbidden":
            takes = ", ".join(self.names) or "no parameters"
            return ParameterProblem(name, f"unknown parameter; this job takes: {takes}")
        return ParameterProblem(name, str(error.get("msg", "invalid")))

    def redact(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """JSON-safe values with every secret replaced: what may be recorded or shown."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in self.secrets:
                out[name] = None if value is None else REDACTED
            elif isinstance(value, str | int | float | bool) or value is None:
                out[name] = value
            else:
                out[name] = str(getattr(value, "value", value))
        return out

    def secret_values(self, values: Mapping[str, Any]) -> list[str]:
        """The plain secret values of one run, for masking them out of its output."""
        found = []
        for name in self.secrets:
            value = values.get(name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                found.append(value.get_secret_value())
        return found

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the parameters; secrets carry ``writeOnly`` and ``x-secret``."""
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        for name, prop in schema.get("properties", {}).items():
            prop.pop("title", None)
            if name in self.secrets:
                prop["x-secret"] = True
                prop["writeOnly"] = True
            if name in self.sources:
                # Where the default lives is the server's business: only its kind shows.
                prop.pop("default", None)
                prop["x-secret-default"] = self.sources[name].partition(":")[0]
        return schema

"""What a verified webhook delivery gives a job: filters that may ignore it, and a mapping
from its content to the job's parameters (runner.toml's ``events``, ``when``, ``params``).

Expressions are JMESPath (https://jmespath.org — the language of ``az … --query``), each
compiled once when runner.toml is read, over one document per delivery::

    body      the JSON body; a form body's fields (GitHub's form content type, a single
              ``payload`` field holding JSON, is read as that JSON); else the text
    headers   by lower-case name (``headers."x-github-delivery"``), credentials and
              signatures left out (Authorization, Cookie, X-Gitlab-Token, …)
    query     the URL's query parameters

``body.ref``, ``body.repository.full_name``, ``body.commits[0].id`` and
``starts_with(body.ref, 'refs/tags/v')`` are expressions. A delivery is ignored when its
event is not among ``events`` or a ``when`` expression's value is not the one given (or
any of a list); it then starts nothing and the sender is told why.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath import exceptions as jmes

from runner.bodies import (
    FORM,
    BodyError,
    as_text,
    form_pairs,
    is_json_type,
    json_document,
    media_type,
)
from runner.errors import ConfigError, ParameterProblem
from runner.params import PARAM_NAME

# Never visible to an expression: what proves a sender (a mapping must not copy a secret
# into a parameter, which is recorded) or says nothing about the delivery.
HIDDEN_HEADERS = frozenset(
    (
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-gitlab-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-slack-signature",
        "webhook-signature",
    )
)
MAX_FORM_FIELDS = 1000
# What evaluating an expression over a sender's document can raise: a function meeting a
# value of the wrong type, or one walking a document nested past Python's recursion limit
# (the document is parsed without the parameters' depth check, which costs more than the
# parse on a large body: see scripts/bench_deliveries.py).
EVALUATION_ERRORS = (jmes.JMESPathError, RecursionError)
_SHOWN = 80  # characters of a found value quoted back in a reason


@dataclass(frozen=True)
class Expression:
    """A compiled JMESPath expression; equal to another with the same text."""

    text: str
    compiled: Any = field(compare=False, repr=False)

    @classmethod
    def compile(cls, text: Any, where: str) -> Expression:
        """``text`` compiled, or ConfigError saying where and what is wrong with it."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where} must be a JMESPath expression such as body.ref")
        try:
            compiled = jmespath.compile(text)
            # Functions are looked up when an expression runs: try it once on an empty
            # delivery so that a misspelt function stops the start, not a delivery.
            compiled.search({"body": {}, "headers": {}, "query": {}})
        except (jmes.UnknownFunctionError, jmes.ArityError, jmes.ParseError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{where}: {text!r} is not a JMESPath expression: {first}") from None
        except jmes.JMESPathTypeError:
            pass  # a type that depends on the delivery (starts_with on a missing field)
        return cls(text, compiled)

    def find(self, document: Mapping[str, Any]) -> Any:
        """The expression's value (None when nothing matches); one of EVALUATION_ERRORS
        when it cannot be had."""
        return self.compiled.search(document)


@dataclass(frozen=True)
class Condition:
    """A ``when`` entry: the expression's value must equal one of ``values``."""

    expression: Expression
    values: tuple[Any, ...]

    def miss(self, document: Mapping[str, Any]) -> str | None:
        """Why ``document`` does not meet the condition, or None when it does."""
        try:
            found = self.expression.find(document)
        except EVALUATION_ERRORS as exc:
            return f"{self.expression.text} cannot be evaluated on this delivery ({exc})"
        if any(_same(found, want) for want in self.values):
            return None
        wanted = " or ".join(_shown(v) for v in self.values)
        return f"{self.expression.text} is {_shown(found)}, not {wanted}"


def _same(found: Any, want: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (as it would be in Python)."""
    if isinstance(found, bool) or isinstance(want, bool):
        return type(found) is type(want) and found == want
    return bool(found == want)


def _shown(value: Any) -> str:
    if value is None:
        return "missing (null)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


@dataclass(frozen=True)
class Payload:
    """A verified delivery as the rules see it: its event and what it carried."""

    event: str | None
    body: bytes
    content_type: str | None
    headers: Mapping[str, str]
    query: Mapping[str, str]

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        """What expressions run on (see the module docstring); built on first use."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        return {
            "body": _body(self.body, media_type(self.content_type)),
            "headers": {k: v for k, v in headers.items() if k not in HIDDEN_HEADERS},
            "query": dict(self.query),
        }


def _body(body: bytes, ctype: str) -> Any:
    if ctype == FORM:
        try:
            pairs = form_pairs(body, MAX_FORM_FIELDS)
        except BodyError:
            return body.decode("utf-8", "replace")
        fields: dict[str, Any] = {}
        for name, value in pairs:
            had = fields.get(name)
            fields[name] = value if had is None else [*_listed(had), value]
        if list(fields) == ["payload"]:
            # GitHub's "application/x-www-form-urlencoded" content type: the JSON document
            # travels as the one field ``payload``.
            try:
                return json_document(str(fields["payload"]).encode(), strict=False)
            except BodyError:
                pass
        return fields
    if is_json_type(ctype) and body:
        try:
            return json_document(body, strict=False)
        except BodyError:
            pass
    return body.decode("utf-8", "replace")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Mapped:
    """The parameters a delivery's mapping gives: found values, and what found nothing
    (``missing``) or could not be evaluated (``failed``: name → why)."""

    values: dict[str, Any]
    missing: dict[str, str]  # name → expression text
    failed: dict[str, str]
    sources: dict[str, str]  # every mapped name → its expression text

    def explain(self, problems: list[ParameterProblem]) -> list[ParameterProblem]:
        """Admission's problems, each mapped parameter's saying where it came from, and
        the mapping's own failures (one problem per name)."""
        out = [ParameterProblem(n, why) for n, why in self.failed.items()]
        for p in problems:
            if p.name in self.failed:
                continue
            if p.name in self.missing:
                p = ParameterProblem(
                    p.name, f"{p.reason}: {self.missing[p.name]} found nothing in this delivery"
                )
            elif p.name in self.sources:
                p = ParameterProblem(p.name, f"{p.reason} (from {self.sources[p.name]})")
            out.append(p)
        return out


def ignores(events: tuple[str, ...], when: tuple[Condition, ...], payload: Payload) -> str | None:
    """Why a job with these filters ignores ``payload``, or None when it takes it."""
    if events and payload.event not in events:
        takes = ", ".join(events)
        if payload.event is None:
            return f"the delivery names no event; this job takes {takes}"
        return f"event {payload.event!r} is not one this job takes ({takes})"
    for condition in when:
        why = condition.miss(payload.document)
        if why is not None:
            return why
    return None


def map_params(params: tuple[tuple[str, Expression], ...], payload: Payload) -> Mapped:
    """Each mapped parameter's value, as text where it is a string, number or boolean
    (the way a query string carries it, for the job's types to convert)."""
    values: dict[str, Any] = {}
    missing: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, expression in params:
        try:
            found = as_text(expression.find(payload.document))
        except EVALUATION_ERRORS as exc:
            failed[name] = f"{expression.text} cannot be evaluated on this delivery ({exc})"
            continue
        if found is None:
            missing[name] = expression.text
        else:
            values[name] = found
    return Mapped(values, missing, failed, {name: e.text for name, e in params})


# -- runner.toml ---------------------------------------------------------------------------

KEYS = ("params", "events", "when")
Params = tuple[tuple[str, Expression], ...]


def params_from_toml(value: Any, where: str) -> Params:
    """``params = { ref = "body.ref", … }``: parameter name → expression."""
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: params is a table: params = {{ ref = "body.ref" }}')
    out = []
    for name, text in value.items():
        if not PARAM_NAME.match(name) or name.startswith("_"):
            raise ConfigError(f"{where}: params: {name!r} is not a parameter name")
        out.append((name, Expression.compile(text, f"{where}: params.{name}")))
    return tuple(out)


def events_from_toml(value: Any, where: str) -> tuple[str, ...]:
    """``events = ["push"]`` (or one string): the event names a delivery may have."""
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, list) or not listed:
        raise ConfigError(f'{where}: events is a list of event names: events = ["push"]')
    if not all(isinstance(e, str) and e.strip() for e in listed):
        raise ConfigError(f"{where}: events holds event names (strings)")
    return tuple(listed)


def when_from_toml(value: Any, where: str) -> tuple[Condition, ...]:
    """``when = { "body.ref" = "refs/heads/main" }``: expression → value, or a list of
    values any of which will do."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            f'{where}: when is a table of expression = value: when = {{ "body.ref" = '
            '"refs/heads/main" }'
        )
    out = []
    for text, wanted in value.items():
        values = tuple(wanted) if isinstance(wanted, list) else (wanted,)
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise ConfigError(
                f"{where}: when.{text!r} must be a string, number or boolean, or a list of them"
            )
        out.append(Condition(Expression.compile(text, f"{where}: when"), values))
    return tuple(out)

"""runner.deliveries: what expressions see of a delivery, and how filters decide."""

from __future__ import annotations

import json

import pytest

from runner.bodies import FORM
from runner.deliveries import Condition, Expression, Payload, ignores, map_params


def _payload(body: bytes, ctype: str | None = "application/json", **headers: str) -> Payload:
    return Payload("push", body, ctype, headers, {"env": "prod"})


def test_credentials_and_signatures_are_not_visible_to_expressions():
    """A mapping cannot copy a secret token or a signature into a recorded parameter."""
    doc = _payload(
        b"{}",
        **{"X-Gitlab-Token": "tok", "Authorization": "HMAC x", "X-Hub-Signature-256": "sha",
           "Cookie": "c", "webhook-signature": "v1,x", "X-GitHub-Delivery": "d-1"},
    ).document  # fmt: skip
    assert doc["headers"] == {"x-github-delivery": "d-1"}
    assert doc["query"] == {"env": "prod"}


@pytest.mark.parametrize(
    ("body", "ctype", "expected"),
    [
        (b'{"ref": "x"}', "application/json", {"ref": "x"}),
        (b'{"ref": "x"}', None, {"ref": "x"}),
        (
            b"text=hi&user_id=U1",
            FORM,
            {"text": "hi", "user_id": "U1"},
        ),
        (b"a=1&a=2", FORM, {"a": ["1", "2"]}),
        (b"payload=%7B%22ref%22%3A%22x%22%7D", FORM, {"ref": "x"}),
        (b"not json", "application/json", "not json"),
        (b"\xff\xfe", "application/octet-stream", "\ufffd\ufffd"),
    ],
)
def test_the_body_as_expressions_see_it(body, ctype, expected):
    """JSON as JSON; a form's fields (GitHub's payload= form as its JSON); else text."""
    assert _payload(body, ctype).document["body"] == expected


def test_when_compares_as_json_does():
    """true is not 1, "1" is not 1; a list means any of its values; a miss says both."""
    doc = _payload(json.dumps({"n": 1, "ok": True, "action": "closed"}).encode()).document
    n = Expression.compile("body.n", "t")
    assert Condition(n, (1,)).miss(doc) is None
    assert Condition(n, (True,)).miss(doc) == "body.n is 1, not true"
    assert Condition(n, ("1",)).miss(doc) == 'body.n is 1, not "1"'
    ok = Expression.compile("body.ok", "t")
    assert Condition(ok, (1,)).miss(doc) == "body.ok is true, not 1"
    action = Expression.compile("body.action", "t")
    assert Condition(action, ("opened", "reopened")).miss(doc) == (
        'body.action is "closed", not "opened" or "reopened"'
    )
    gone = Expression.compile("body.gone", "t")
    assert Condition(gone, ("x",)).miss(doc) == 'body.gone is missing (null), not "x"'


def test_a_function_meeting_the_wrong_type_misses_rather_than_fails():
    """starts_with on a missing field: the delivery is ignored with the reason."""
    doc = _payload(b"{}").document
    tags = Expression.compile("starts_with(body.ref, 'refs/tags/')", "t")
    why = Condition(tags, (True,)).miss(doc)
    assert why is not None and why.startswith("starts_with(body.ref, 'refs/tags/') cannot be")


def test_events_are_matched_exactly_and_a_missing_one_is_said():
    """An event outside the list, or none at all, is ignored with the job's list."""
    assert ignores(("push",), (), _payload(b"{}")) is None
    pr = Payload("pull_request", b"{}", None, {}, {})
    assert ignores(("push", "release"), (), pr) == (
        "event 'pull_request' is not one this job takes (push, release)"
    )
    none = Payload(None, b"{}", None, {}, {})
    assert ignores(("push",), (), none) == "the delivery names no event; this job takes push"


def test_mapped_values_become_text_as_a_query_string_would_carry_them():
    """Numbers and booleans as JSON spells them, null as no value, objects as they are
    (admission refuses them by name)."""
    body = json.dumps({"n": 42, "f": 1.5, "b": False, "s": "x", "z": None, "o": {"a": 1}})
    params = tuple(
        (name, Expression.compile(f"body.{name}", "t")) for name in ("n", "f", "b", "s", "z", "o")
    ) + (("q", Expression.compile("query.env", "t")),)
    mapped = map_params(params, _payload(body.encode()))
    assert mapped.values == {"n": "42", "f": "1.5", "b": "false", "s": "x", "o": {"a": 1},
                             "q": "prod"}  # fmt: skip
    assert mapped.missing == {"z": "body.z"}


@pytest.mark.parametrize("depth", [500, 900, 990, 2000])
def test_a_document_nested_past_the_recursion_limit_is_a_reason_not_a_crash(depth):
    """A sender's deeply nested body (parsed, or too deep to be and so text): an expression
    that walks it all gives a value or a reason, never an exception the server would
    answer 500 with (where the limit falls depends on the stack in use)."""
    body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    payload = _payload(body)
    walk = Expression.compile("length(to_string(body))", "t")
    why = Condition(walk, (-1,)).miss(payload.document)
    assert why is not None and why.startswith("length(to_string(body)) ")
    mapped = map_params((("x", walk),), payload)
    assert set(mapped.values) | set(mapped.failed) == {"x"}

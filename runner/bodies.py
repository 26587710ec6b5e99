"""Request bodies read as data: urlencoded forms and JSON documents.

Pure functions over bytes, shared by the job kinds (which fields of a body are a job's
parameters) and the delivery mappings (what ``body`` is to an expression). A body that
cannot be read raises :class:`BodyError` with a reason fit for a ``body`` problem.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

FORM = "application/x-www-form-urlencoded"
MAX_JSON_DEPTH = 32


class BodyError(ValueError):
    """A body that is not what its type says; ``name`` is set for a field given twice."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        self.reason = reason
        self.name = name
        super().__init__(reason)


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json``."""
    return (content_type or "").split(";")[0].strip().lower()


def is_json_type(ctype: str) -> bool:
    """True for ``application/json``, ``application/…+json`` and an unlabelled body."""
    return ctype == "" or ctype.endswith("json")


def form_pairs(body: bytes, max_fields: int, *, strict: bool = False) -> list[tuple[str, str]]:
    """A urlencoded form's fields in order (a name may repeat). ``strict``: every field must
    be ``name=value`` (``curl -d 'some text'`` is labelled a form but is none)."""
    try:
        return urllib.parse.parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=strict,
            max_num_fields=max_fields,
        )
    except UnicodeDecodeError:
        raise BodyError("a form body must be UTF-8") from None
    except ValueError as exc:
        raise BodyError(str(exc)) from None


def json_document(body: bytes, *, strict: bool = True) -> Any:
    """The body as JSON. ``strict`` (for parameters): a name given twice in one object is
    refused (json's default keeps the last one silently), and so is nesting deeper than
    ``MAX_JSON_DEPTH``; both checks cost more than the parse itself on a large body."""
    if not strict:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise BodyError("not valid JSON") from None
    try:
        doc = json.loads(body, object_pairs_hook=_unique)
    except _Twice as twice:
        raise BodyError("given more than once in the JSON body", twice.name[:64]) from None
    except (ValueError, RecursionError):
        raise BodyError("not valid JSON") from None
    if _depth(doc) > MAX_JSON_DEPTH:
        raise BodyError("JSON nested too deeply")
    return doc


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (:func:`json_document`, and an object at the top)."""
    doc = json_document(body)
    if not isinstance(doc, dict):
        raise BodyError("must be a JSON object")
    return doc


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _Twice(name)
        out[name] = value
    return out


class _Twice(ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def as_text(value: Any) -> Any:
    """A JSON scalar as a parameter's text, the way a query string would carry it
    (``true``, ``42``, ``1.5``); None for null. Objects and lists are returned as they are
    for admission to refuse by name."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return value

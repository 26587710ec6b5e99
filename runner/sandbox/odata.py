"""The small part of OData ``$filter`` that ARM list calls use.

Clauses joined by ``and`` (or ``or``): ``field eq 'value'`` (case-insensitive, as ARM
compares), ``tagName eq 'k' and tagValue eq 'v'``, ``atScope()`` and ``assignedTo('id')``
(role assignments). An empty filter matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["matches_filter"]

_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_CALL = re.compile(r"\s*(\w+)\(\s*(?:'((?:[^']|'')*)')?\s*\)\s*", re.IGNORECASE)


def _clause(text: str, fields: Mapping[str, str], tag: list[str]) -> bool:
    if m := _CLAUSE.fullmatch(text):
        field, value = m.group(1), m.group(2).replace("''", "'")
        if field.lower() == "tagname":
            tag[:] = [value]
            return any(k.lower() == f"tagname:{value.lower()}" for k in fields)
        if field.lower() == "tagvalue":
            names = tag or [k.split(":", 1)[1] for k in fields if k.startswith("tagName:")]
            return any(fields.get(f"tagName:{n}", "").lower() == value.lower() for n in names)
        for key, have in fields.items():
            if key.lower() == field.lower():
                return have.lower() == value.lower()
        return False
    if m := _CALL.fullmatch(text):
        name, arg = m.group(1).lower(), (m.group(2) or "").replace("''", "'")
        if name == "atscope":
            return True
        if name == "assignedto":
            return fields.get("principalId", "").lower() == arg.lower()
    return False


def matches_filter(expression: str, fields: Mapping[str, str]) -> bool:
    """Whether an item with ``fields`` passes ``expression``."""
    if not expression.strip():
        return True
    for alternative in re.split(r"\s+or\s+", expression, flags=re.IGNORECASE):
        tag: list[str] = []
        if all(_clause(c, fields, tag) for c in re.split(r"\s+and\s+", alternative, flags=re.I)):
            return True
    return False

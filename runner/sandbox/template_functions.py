"""The template functions the sandbox's deployments understand.

What azure-cli's generated templates and typical hand-written ones call: parameters,
variables, resourceId, reference, concat, format, the string, logical, array and
comparison functions. Anything else is ARM's InvalidTemplate, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from .template_expr import Functions, Lazy, Node, TemplateError

__all__ = ["Scope", "functions", "lazy_functions", "resource_id"]


class Scope(Protocol):
    """What the functions need from the deployment being evaluated."""

    subscription_id: str
    tenant_id: str
    resource_group: dict[str, Any]
    deployment_name: str

    def parameter(self, name: str) -> Any: ...

    def variable(self, name: str) -> Any: ...

    def reference(self, target: str, full: bool) -> Any: ...

    def copy_index(self, offset: int) -> int: ...


def resource_id(sub: str, rg: str, type_: str, names: list[str]) -> str:
    """``/subscriptions/…/resourceGroups/…/providers/NS/t1/n1/t2/n2`` from a full type."""
    namespace, *types = type_.split("/")
    if len(types) != len(names) or not types:
        raise TemplateError(
            f"Unable to evaluate template language function 'resourceId': the type "
            f"'{type_}' requires {len(types)} resource name argument(s)."
        )
    tail = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{tail}"


def _resource_id(scope: Scope) -> Callable[..., str]:
    def fn(*args: Any) -> str:
        parts = [str(a) for a in args]
        sub, rg = scope.subscription_id, str(scope.resource_group["name"])
        # Leading arguments before the type (the one containing '/') are sub and/or rg.
        idx = next((i for i, p in enumerate(parts) if "/" in p), None)
        if idx is None:
            raise TemplateError("Unable to evaluate 'resourceId': no resource type given.")
        if idx == 2:
            sub, rg = parts[0], parts[1]
        elif idx == 1:
            rg = parts[0]
        names = [n for p in parts[idx + 1 :] for n in p.split("/")]
        return resource_id(sub, rg, parts[idx], names)

    return fn


def _unique_string(*args: Any) -> str:
    # ARM uses a 64-bit MurmurHash in base32; the exact value differs, the shape is the same.
    digest = hashlib.sha256("-".join(str(a) for a in args).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:13]


def _format(fmt: str, *args: Any) -> str:
    return re.sub(r"\{(\d+)(?::[^}]*)?\}", lambda m: str(args[int(m.group(1))]), fmt)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, dict):
        return str(item).lower() in (k.lower() for k in container)
    if isinstance(container, str):
        return str(item).lower() in container.lower()
    return item in container


def _union(*items: Any) -> Any:
    if all(isinstance(i, dict) for i in items):
        out: dict[str, Any] = {}
        for i in items:
            out.update(i)
        return out
    merged: list[Any] = []
    for i in items:
        merged += [x for x in i if x not in merged]
    return merged


def _length(value: Any) -> int:
    return len(value)


def _empty(value: Any) -> bool:
    return value is None or len(value) == 0


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _concat(*args: Any) -> Any:
    if args and all(isinstance(a, list) for a in args):
        return [x for a in args for x in a]
    return "".join(_string(a) for a in args)


def _guid(*args: Any) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "-".join(str(a) for a in args)))


def functions(scope: Scope) -> Functions:
    """The function table for one evaluation scope."""

    def reference(target: Any, api_version: Any = None, full: Any = None) -> Any:
        return scope.reference(str(target), str(full or "").lower() == "full")

    return {
        "parameters": scope.parameter,
        "variables": scope.variable,
        "resourceid": _resource_id(scope),
        "reference": reference,
        "resourcegroup": lambda: dict(scope.resource_group),
        "subscription": lambda: {
            "id": f"/subscriptions/{scope.subscription_id}",
            "subscriptionId": scope.subscription_id,
            "tenantId": scope.tenant_id,
            "displayName": "Sandbox subscription",
        },
        "deployment": lambda: {
            "name": scope.deployment_name,
            "properties": {"template": {"contentVersion": "1.0.0.0"}},
        },
        "copyindex": lambda offset=0: scope.copy_index(int(offset)),
        "concat": _concat,
        "format": _format,
        "string": _string,
        "int": lambda v: int(v),
        "bool": _bool,
        "json": lambda v: json.loads(v),
        "tolower": lambda v: str(v).lower(),
        "toupper": lambda v: str(v).upper(),
        "trim": lambda v: str(v).strip(),
        "replace": lambda s, old, new: str(s).replace(str(old), str(new)),
        "split": lambda s, sep: str(s).split(sep) if isinstance(sep, str) else [str(s)],
        "substring": lambda s, start, length=None: str(s)[
            int(start) : None if length is None else int(start) + int(length)
        ],
        "startswith": lambda s, p: str(s).lower().startswith(str(p).lower()),
        "endswith": lambda s, p: str(s).lower().endswith(str(p).lower()),
        "indexof": lambda s, p: str(s).lower().find(str(p).lower()),
        "base64": lambda s: base64.b64encode(str(s).encode()).decode(),
        "uniquestring": _unique_string,
        "guid": _guid,
        "newguid": lambda: str(uuid.uuid4()),
        "length": _length,
        "empty": _empty,
        "contains": _contains,
        "first": lambda v: v[0],
        "last": lambda v: v[-1],
        "take": lambda v, n: v[: int(n)],
        "skip": lambda v, n: v[int(n) :],
        "union": _union,
        "array": lambda v: v if isinstance(v, list) else [v],
        "createarray": lambda *v: list(v),
        "createobject": lambda *kv: dict(zip(kv[::2], kv[1::2], strict=True)),
        "coalesce": lambda *v: next((x for x in v if x is not None), None),
        "equals": lambda a, b: a == b,
        "not": lambda v: not v,
        "and": lambda *v: all(v),
        "or": lambda *v: any(v),
        "greater": lambda a, b: a > b,
        "less": lambda a, b: a < b,
        "greaterorequals": lambda a, b: a >= b,
        "lessorequals": lambda a, b: a <= b,
        "add": lambda a, b: int(a) + int(b),
        "sub": lambda a, b: int(a) - int(b),
        "mul": lambda a, b: int(a) * int(b),
        "div": lambda a, b: int(a) // int(b),
        "mod": lambda a, b: int(a) % int(b),
        "min": lambda *v: min(v[0] if len(v) == 1 else v),
        "max": lambda *v: max(v[0] if len(v) == 1 else v),
        "range": lambda start, count: list(range(int(start), int(start) + int(count))),
    }


def _if(run: Callable[[Node], Any], args: tuple[Node, ...]) -> Any:
    # Only the branch taken is evaluated: templates use if() to avoid reference() errors.
    if len(args) != 3:
        raise TemplateError("The template function 'if' expects exactly three parameters.")
    return run(args[1]) if run(args[0]) else run(args[2])


def lazy_functions() -> Lazy:
    """Functions that evaluate their own arguments."""
    return {"if": _if}

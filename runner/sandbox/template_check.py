"""Checks of a whole template before anything runs: known functions only, no cycles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .template_expr import Node, TemplateError, calls, is_expression, parse
from .template_functions import functions, lazy_functions

if TYPE_CHECKING:
    from .deployment_plan import Planned

__all__ = ["check_cycles", "check_functions", "nodes"]


def nodes(value: Any) -> list[Node]:
    if is_expression(value):
        return [parse(value[1:-1])]
    if isinstance(value, dict):
        return [n for v in value.values() for n in nodes(v)]
    if isinstance(value, list):
        return [n for v in value for n in nodes(v)]
    return []


def check_functions(template: dict[str, Any]) -> None:
    """Refuse unknown functions up front, as ARM's validation does (not halfway through)."""
    known = set(functions(_NullScope())) | set(lazy_functions())
    for node in nodes(template):
        for call in calls(node):
            if call.name not in known:
                raise TemplateError(
                    f"The template function '{call.name}' is not valid. Please see "
                    "https://aka.ms/arm-functions for usage details."
                )


class _NullScope:
    subscription_id = tenant_id = deployment_name = ""
    resource_group: dict[str, Any] = {}

    def parameter(self, name: str) -> Any: ...
    def variable(self, name: str) -> Any: ...
    def reference(self, target: str, full: bool) -> Any: ...
    def copy_index(self, offset: int) -> int:
        return 0


def check_cycles(resources: dict[str, Planned]) -> None:
    done: set[str] = set()

    def visit(key: str, path: list[str]) -> None:
        if key in path:
            raise TemplateError(
                f"Deployment template validation failed: 'Circular dependency detected on "
                f"resource: '{resources[key].id}'."
            )
        if key in done:
            return
        for dep in resources[key].depends:
            visit(dep, [*path, key])
        done.add(key)

    for key in resources:
        visit(key, [])

"""What a deployment's expressions see: parameters, variables (evaluated once, lazily,
refusing self-reference), reference() and copyIndex() (template_functions.Scope)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .template_expr import TemplateError

if TYPE_CHECKING:
    from .deployment_plan import EngineView

__all__ = ["Scope"]


class Scope:
    """Parameters, variables and references of one deployment (template_functions.Scope)."""

    def __init__(self, engine: EngineView) -> None:
        self.engine = engine
        self.subscription_id = engine.sub
        self.tenant_id = engine.world.tenant_id
        self.resource_group = engine.rg_body
        self.deployment_name = engine.name
        self._variables: dict[str, Any] = {}
        self._evaluating: set[str] = set()
        self.index: int | None = None

    def parameter(self, name: str) -> Any:
        for key, value in self.engine.parameters.items():
            if key.lower() == str(name).lower():
                return value
        raise TemplateError(f"The template parameter '{name}' is not found.")

    def variable(self, name: str) -> Any:
        key = str(name).lower()
        if key in self._variables:
            return self._variables[key]
        raw = {k.lower(): v for k, v in (self.engine.template.get("variables") or {}).items()}
        if key not in raw:
            raise TemplateError(f"The template variable '{name}' is not found.")
        if key in self._evaluating:
            raise TemplateError(f"The template variable '{name}' refers to itself.")
        self._evaluating.add(key)
        try:
            value = self.engine.resolve(raw[key], self)
        finally:
            self._evaluating.discard(key)
        self._variables[key] = value
        return value

    def reference(self, target: str, full: bool) -> Any:
        return self.engine.reference(target, full)

    def copy_index(self, offset: int) -> int:
        if self.index is None:
            raise TemplateError("The template function 'copyIndex' is not expected here.")
        return self.index + offset

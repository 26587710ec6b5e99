"""What a deployment plans, and what of the engine its helpers see.

``Planned`` is one resource of a template with its run state; ``EngineView`` is the part
of the deployment engine the scope of expressions, the checks and the rendering read
(they take this protocol, not the engine, so that none of them imports it back).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from .world import Operation, Resource, World


@dataclass
class Planned:
    """One resource of the template, with its run state."""

    id: str
    type: str
    name: str
    api_version: str
    spec: dict[str, Any]
    copy_index: int | None
    depends: set[str] = field(default_factory=set)  # lower-case ids
    state: str = "Pending"  # Pending → Running → Succeeded | Failed
    operation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16].upper())
    op: Operation | None = None
    started: float = 0.0
    finished: float = 0.0
    status_code: str = ""
    error: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return self.id.lower()


class EngineView(Protocol):
    """The deployment engine as its helpers see it."""

    world: World
    deployment: Resource
    template: dict[str, Any]
    sub: str
    rg_body: dict[str, Any]
    name: str
    parameters: dict[str, Any]
    declared: dict[str, str]
    resources: dict[str, Planned]
    outputs: dict[str, Any]
    started: float
    finished: float | None
    state: str
    error: dict[str, Any] | None

    # ``scope`` is the Scope that asks (deployment_scope.py), passed through unread here.
    def resolve(self, value: Any, scope: Any) -> Any: ...

    def reference(self, target: str, full: bool) -> Any: ...

    def now(self) -> float: ...

"""How a deployment looks to clients: its properties and its deployment operations."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .deployment_plan import EngineView, Planned

__all__ = ["operations", "properties"]

_SECURE = ("securestring", "secureobject")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def properties(self: EngineView) -> dict[str, Any]:
    """The deployment's ``properties`` as ARM shows them (secure values never)."""
    end = self.finished if self.finished is not None else self.now()
    props: dict[str, Any] = {
        "templateHash": str(abs(hash(json.dumps(self.template, sort_keys=True)))),
        "parameters": {
            name: {"type": _type_name(kind)}
            if kind in _SECURE
            else {"type": _type_name(kind), "value": self.parameters[name]}
            for name, kind in self.declared.items()
        },
        "mode": "Incremental",
        "provisioningState": self.state,
        "timestamp": _iso(end),
        "duration": f"PT{max(0.0, end - self.started):.3f}S",
        "correlationId": self.deployment.hidden.setdefault("correlation", str(uuid.uuid4())),
        "providers": _providers(self.resources.values()),
        "dependencies": [
            {
                "dependsOn": [_target(self.resources[d]) for d in sorted(p.depends)],
                **_target(p),
            }
            for p in self.resources.values()
            if p.depends
        ],
        "outputs": self.outputs,
        "outputResources": [
            {"id": p.id} for p in self.resources.values() if p.state == "Succeeded"
        ],
    }
    if self.error is not None:
        props["error"] = self.error
    return props


def operations(self: EngineView) -> list[dict[str, Any]]:
    """The deployment operations: one per resource started."""
    out = []
    for p in self.resources.values():
        if p.state == "Pending":
            continue
        end = p.finished or self.now()
        status: dict[str, Any] = {"status": p.state}
        if p.error:
            status["error"] = p.error
        out.append(
            {
                "id": f"{self.deployment.id}/operations/{p.operation_id}",
                "operationId": p.operation_id,
                "properties": {
                    "provisioningOperation": "Create",
                    "provisioningState": p.state,
                    "timestamp": _iso(end),
                    "duration": f"PT{max(0.0, end - p.started):.3f}S",
                    "trackingId": str(uuid.uuid5(uuid.NAMESPACE_URL, p.id + p.operation_id)),
                    "statusCode": p.status_code or "Accepted",
                    "statusMessage": status,
                    "targetResource": {**_target(p), "apiVersion": p.api_version},
                },
            }
        )
    return out


def _type_name(kind: str) -> str:
    return {"securestring": "SecureString", "secureobject": "SecureObject"}.get(
        kind, kind[:1].upper() + kind[1:]
    )


def _target(p: Planned) -> dict[str, str]:
    return {"id": p.id, "resourceType": p.type, "resourceName": p.name}


def _providers(resources: Any) -> list[dict[str, Any]]:
    by_ns: dict[str, set[str]] = {}
    for p in resources:
        namespace, _, rest = p.type.partition("/")
        by_ns.setdefault(namespace, set()).add(rest)
    return [
        {"namespace": ns, "resourceTypes": [{"resourceType": t} for t in sorted(types)]}
        for ns, types in by_ns.items()
    ]

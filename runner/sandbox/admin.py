"""``/_sandbox/``: a small JSON API over the sandbox's controls (for scripts and benchmarks).

    GET    /_sandbox                   identities, role assignments, latency, faults, counters
    PUT    /_sandbox/latency           {"Microsoft.Network/*": 2.0, ...}
    POST   /_sandbox/faults            {"kind": "throttle"|"error"|"provision_failed",
                                        "operation": "...", "times": 1, "retry_after": 1}
    DELETE /_sandbox/faults
    POST   /_sandbox/roles             {"principal_id": "...", "role": "Reader", "scope": "..."}
    DELETE /_sandbox/roles             same body; role and scope optional
    PUT    /_sandbox/imds              {"mode": "up"|"error"|"refuse"}
    PUT    /_sandbox/vault             {"mode": "up"|"error"|"refuse"}  (Key Vault outage)
    POST   /_sandbox/secrets           {"name": "...", "value": "...", "vault": "..."}
    POST   /_sandbox/counters/reset

No authentication: the listener is bound to 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .controls import Controls, Fault, FaultKind, ImdsMode
from .vaults import VaultError
from .world import World

__all__ = ["AdminApi"]


class AdminApi:
    """Handles ``/_sandbox/`` requests."""

    def __init__(
        self,
        world: World,
        controls: Controls,
        set_imds_mode: Callable[[ImdsMode], Awaitable[None]],
        set_vault_mode: Callable[[ImdsMode], Awaitable[None]],
    ) -> None:
        self.world = world
        self.controls = controls
        self.set_imds_mode = set_imds_mode
        self.set_vault_mode = set_vault_mode

    def state(self) -> dict[str, Any]:
        """Everything a script may want to read back."""
        with self.world.lock:
            return {
                "subscription_id": self.world.subscription_id,
                "tenant_id": self.world.tenant_id,
                "identities": [dataclasses.asdict(i) for i in self.world.identities],
                "role_assignments": [dataclasses.asdict(a) for a in self.world.assignments],
                # Names only: an admin answer is printed and logged; values never are.
                "vaults": {
                    v.name: {
                        "url": v.url,
                        "id": v.resource_id,
                        "secrets": sorted(s.name for s in v.secrets.values()),
                    }
                    for v in self.world.vaults.values()
                },  # fmt: skip
                **self.controls.snapshot(),
            }

    async def handle(self, request: Request) -> Response:
        """Dispatch one admin request; 400 with a message on bad input."""
        path = request.url.path.rstrip("/")
        method = request.method
        try:
            body: Any = json.loads(await request.body() or b"null")
            if (method, path) == ("GET", "/_sandbox"):
                return JSONResponse(self.state())
            if (method, path) == ("PUT", "/_sandbox/latency"):
                self.controls.set_latency(dict(body))
            elif (method, path) == ("POST", "/_sandbox/faults"):
                self.controls.inject(
                    Fault(
                        FaultKind(body["kind"]),
                        str(body["operation"]),
                        int(body.get("times", 1)),
                        int(body.get("retry_after", 1)),
                    )
                )
            elif (method, path) == ("DELETE", "/_sandbox/faults"):
                self.controls.clear_faults()
            elif (method, path) == ("POST", "/_sandbox/roles"):
                self.world.grant(body["principal_id"], body["role"], body["scope"])
            elif (method, path) == ("DELETE", "/_sandbox/roles"):
                self.world.revoke(body["principal_id"], body.get("role"), body.get("scope"))
            elif (method, path) == ("PUT", "/_sandbox/imds"):
                await self.set_imds_mode(ImdsMode(body["mode"]))
            elif (method, path) == ("PUT", "/_sandbox/vault"):
                await self.set_vault_mode(ImdsMode(body["mode"]))
            elif (method, path) == ("POST", "/_sandbox/secrets"):
                vault = self.world.add_vault(str(body.get("vault") or "runner-sandbox"))
                with self.world.lock:
                    vault.set(str(body["name"]), str(body["value"]), int(time.time()))
            elif (method, path) == ("POST", "/_sandbox/counters/reset"):
                self.controls.reset_counters()
            else:
                return JSONResponse({"error": f"no admin endpoint {method} {path}"}, 404)
        except VaultError as exc:
            return JSONResponse({"error": f"bad admin request: {exc.message}"}, 400)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad admin request: {exc!r}"}, 400)
        return JSONResponse(self.state())

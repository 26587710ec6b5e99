"""The sandbox's in-memory Azure: identities, role assignments, resources, operations.

One ``World`` per sandbox. Handlers run synchronously inside the event loop and hold
``world.lock`` for a whole request, so each request sees and leaves a consistent world;
the lock (not the loop) also guards calls made from a test's thread.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from .errors import Forbidden, NotFound
from .tokens import Claims
from .vaults import Vault, valid_vault_name

__all__ = [
    "DATA_ACTIONS",
    "NOT_ACTIONS",
    "ROLES",
    "ROLE_IDS",
    "Identity",
    "Operation",
    "Resource",
    "RoleAssignment",
    "World",
    "scope_covers",
]

# Actions granted by each built-in role, and (NOT_ACTIONS) those it excludes.
ROLES: dict[str, tuple[str, ...]] = {
    "Owner": ("*",),
    "Contributor": ("*",),
    "User Access Administrator": ("*/read", "Microsoft.Authorization/*"),
    "Reader": ("*/read",),
    "Network Contributor": ("Microsoft.Network/*", "Microsoft.Resources/*/read"),
    "Virtual Machine Contributor": (
        "Microsoft.Compute/*",
        "Microsoft.Network/*/read",
        "Microsoft.Network/*/join/action",
        "Microsoft.Resources/*/read",
    ),
    # Key Vault's data-plane roles: what they allow lies in DATA_ACTIONS (no "*" of
    # Owner or Contributor reaches a secret's value, as in Azure).
    "Key Vault Secrets User": (),
    "Key Vault Secrets Officer": (
        "Microsoft.Authorization/*/read",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.KeyVault/vaults/*/read",
    ),
    "Key Vault Administrator": (
        "Microsoft.Authorization/*/read",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.KeyVault/vaults/*/read",
    ),
    "Key Vault Reader": ("Microsoft.KeyVault/vaults/*/read",),
}

# Data actions (Key Vault's data plane) granted by each role; the others grant none.
DATA_ACTIONS: dict[str, tuple[str, ...]] = {
    "Key Vault Secrets User": (
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    ),
    "Key Vault Secrets Officer": ("Microsoft.KeyVault/vaults/secrets/*",),
    "Key Vault Administrator": ("Microsoft.KeyVault/vaults/*",),
    "Key Vault Reader": ("Microsoft.KeyVault/vaults/secrets/readMetadata/action",),
}


NOT_ACTIONS: dict[str, tuple[str, ...]] = {
    # Contributor manages everything but access: no role assignments (why the runner's
    # "missing role" hint needs an Owner or a User Access Administrator to follow it).
    "Contributor": (
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action",
    ),
}
# The built-in role definitions' real ids.
ROLE_IDS: dict[str, str] = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Network Contributor": "4d97b98b-1d4f-4787-a291-c67834d212e7",
    "Virtual Machine Contributor": "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Reader": "21090545-7ca7-4776-b22c-e363652d74d2",
}


@dataclass(frozen=True)
class Identity:
    """A principal that can get tokens: a managed identity or a workload app registration."""

    name: str
    kind: str  # "system", "user" or "workload"
    principal_id: str
    client_id: str
    resource_id: str


@dataclass(frozen=True)
class RoleAssignment:
    """``role`` granted to ``principal_id`` at ``scope`` (a subscription or resource group)."""

    principal_id: str
    role: str
    scope: str
    # The assignment's name (a GUID) in ARM; by default derived from the three fields.
    name: str = field(default="", compare=False)
    principal_type: str = field(default="ServicePrincipal", compare=False)

    @property
    def id(self) -> str:
        """``{scope}/providers/Microsoft.Authorization/roleAssignments/{name}``."""
        name = self.name or str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{self.principal_id}|{self.role}|{self.scope.lower()}")
        )
        return f"{self.scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}"


def scope_covers(assigned: str, requested: str) -> bool:
    """Whether an assignment at ``assigned`` applies to ``requested`` (same or beneath)."""
    a, r = assigned.lower().rstrip("/"), requested.lower().rstrip("/")
    return r == a or r.startswith(a + "/")


@dataclass
class Resource:
    """One stored ARM resource (mutable world state, not a value)."""

    id: str
    name: str
    type: str
    location: str | None
    properties: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    provisioning_state: str = "Succeeded"
    etag: str = field(default_factory=lambda: f'W/"{uuid.uuid4()}"')
    # Runtime state ARM does not show in the resource body (e.g. a VM's power state).
    hidden: dict[str, Any] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        """The resource as ARM returns it."""
        body: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.location is not None:
            body["location"] = self.location
            body["tags"] = dict(self.tags)
        if self.type.lower().startswith("microsoft.network/"):
            body["etag"] = self.etag
        body.update(self.extra)
        body["properties"] = {**self.properties, "provisioningState": self.provisioning_state}
        return body


@dataclass
class Operation:
    """A long-running operation: completes ``ready_at``, running one of two callbacks."""

    id: str
    action: str
    location: str
    namespace: str
    ready_at: float
    fail: bool
    on_success: Callable[[], None]
    on_failure: Callable[[], None]
    started: float
    status: str = "InProgress"
    # For operations made of others (deployments): when something next happens, which
    # is what Retry-After tells the client. None: ``ready_at``.
    next_event: Callable[[], float] | None = None
    # Filled in on failure: the error that polls show.
    error: dict[str, Any] | None = None
    # POST actions and deletes have no resource to GET afterwards: the Location URL
    # answers 200 with no body once done.

    def retry_after(self, now: float) -> int:
        """Whole seconds until something changes, as ARM sends them (0: poll now)."""
        if self.status != "InProgress":
            return 0
        when = self.next_event() if self.next_event is not None else self.ready_at
        return max(1, math.ceil(when - now)) if when > now else 0


class World:
    """All state of one sandbox."""

    def __init__(self, subscription_id: str, tenant_id: str, location: str) -> None:
        self.lock = threading.RLock()
        self.subscription_id = subscription_id
        self.tenant_id = tenant_id
        self.location = location
        self.subscriptions: dict[str, str] = {subscription_id.lower(): subscription_id}
        self.identities: list[Identity] = []
        self.assignments: list[RoleAssignment] = []
        self.resources: dict[str, Resource] = {}
        # Key Vaults by lower-case name (their data plane: vault_app.py).
        self.vaults: dict[str, Vault] = {}
        self.operations: dict[str, Operation] = {}
        # The time at which the operation being completed became due: what callbacks
        # see as "now", so work they start (a deployment's next resource) starts then.
        self.clock = 0.0
        self._settling = False
        self._pending: dict[str, Operation] = {}

    # -- identities and roles -----------------------------------------------------------
    def add_identity(self, identity: Identity) -> Identity:
        """Register a principal that token endpoints may issue tokens for."""
        with self.lock:
            self.identities.append(identity)
        return identity

    def find_identity(self, **ids: str) -> Identity | None:
        """The identity whose ``client_id``, ``principal_id`` or ``resource_id`` match."""
        with self.lock:
            for identity in self.identities:
                if all(str(getattr(identity, k)).lower() == v.lower() for k, v in ids.items()):
                    return identity
        return None

    def grant(self, principal_id: str, role: str, scope: str, name: str = "") -> RoleAssignment:
        """Assign a built-in role (see ``ROLES``) at a scope (an existing equal one is kept)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
        assignment = RoleAssignment(principal_id, role, scope, name)
        with self.lock:
            for existing in self.assignments:
                if existing == assignment:
                    return existing
            self.assignments.append(assignment)
        return assignment

    def revoke(self, principal_id: str, role: str | None = None, scope: str | None = None) -> int:
        """Remove a principal's assignments (all, or of one role and/or scope); return count."""
        with self.lock:
            keep = [
                a
                for a in self.assignments
                if not (
                    a.principal_id.lower() == principal_id.lower()
                    and (role is None or a.role == role)
                    and (scope is None or a.scope.lower().rstrip("/") == scope.lower().rstrip("/"))
                )
            ]
            removed = len(self.assignments) - len(keep)
            self.assignments = keep
        return removed

    def authorize(self, claims: Claims, action: str, scope: str) -> None:
        """Raise 403 AuthorizationFailed unless a role of the caller covers action at scope."""
        with self.lock:
            for assignment in self.assignments:
                if assignment.principal_id.lower() != claims.object_id.lower():
                    continue
                if not scope_covers(assignment.scope, scope):
                    continue
                role = assignment.role
                allowed = any(fnmatchcase(action.lower(), p.lower()) for p in ROLES[role])
                denied = any(
                    fnmatchcase(action.lower(), p.lower()) for p in NOT_ACTIONS.get(role, ())
                )
                if allowed and not denied:
                    return
        raise Forbidden(
            "AuthorizationFailed",
            f"The client '{claims.app_id}' with object id '{claims.object_id}' does not have "
            f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
            "invalid. If access was recently granted, please refresh your credentials.",
        )

    def may(self, principal_id: str, data_action: str, scope: str) -> bool:
        """Whether a role of ``principal_id`` grants ``data_action`` (data plane) at scope."""
        with self.lock:
            for assignment in self.assignments:
                if assignment.principal_id.lower() != principal_id.lower():
                    continue
                if not scope_covers(assignment.scope, scope):
                    continue
                granted = DATA_ACTIONS.get(assignment.role, ())
                if any(fnmatchcase(data_action.lower(), p.lower()) for p in granted):
                    return True
        return False

    # -- key vaults ---------------------------------------------------------------------
    def add_vault(self, name: str, resource_group: str = "sandbox-host") -> Vault:
        """A Key Vault (kept if it exists) in ``resource_group`` of the subscription."""
        if not valid_vault_name(name):
            raise ValueError(
                f"{name!r} is not a vault name: 3-24 letters, digits and single hyphens, "
                "starting with a letter"
            )
        rid = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.KeyVault/vaults/{name}"
        )
        with self.lock:
            return self.vaults.setdefault(name.lower(), Vault(name, rid, self.location))

    # -- resources ----------------------------------------------------------------------
    def get(self, resource_id: str) -> Resource | None:
        """The resource with this id (any casing), if present."""
        return self.resources.get(resource_id.lower().rstrip("/"))

    def put(self, resource: Resource) -> Resource:
        """Store or replace a resource."""
        self.resources[resource.id.lower()] = resource
        return resource

    def remove_tree(self, resource_id: str) -> None:
        """Delete a resource and everything beneath it (children, RG contents)."""
        key = resource_id.lower().rstrip("/")
        for k in [k for k in self.resources if k == key or k.startswith(key + "/")]:
            del self.resources[k]

    def of_type(self, type_: str, under: str | None = None) -> list[Resource]:
        """Resources of ``type_`` (case-insensitive), optionally beneath an id prefix."""
        prefix = under.lower().rstrip("/") + "/" if under else ""
        return [
            r
            for k, r in self.resources.items()
            if r.type.lower() == type_.lower() and k.startswith(prefix)
        ]

    def resource_group(self, subscription_id: str, name: str) -> Resource:
        """The resource group, or 404 ResourceGroupNotFound."""
        rg = self.get(f"/subscriptions/{subscription_id}/resourceGroups/{name}")
        if rg is None:
            raise NotFound("ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
        return rg

    # -- long-running operations --------------------------------------------------------
    def start_operation(
        self,
        *,
        action: str,
        latency: float,
        fail: bool,
        on_success: Callable[[], None],
        on_failure: Callable[[], None],
        now: float | None = None,
    ) -> Operation:
        """Record an operation that completes after ``latency`` seconds."""
        started = now if now is not None else time.time()
        namespace = action.split("/", 1)[0]
        operation = Operation(
            id=str(uuid.uuid4()),
            action=action,
            location=self.location,
            namespace=namespace,
            ready_at=started + latency,
            fail=fail,
            on_success=on_success,
            on_failure=on_failure,
            started=started,
        )
        self.operations[operation.id] = operation
        self._pending[operation.id] = operation
        if latency <= 0 and not self._settling:
            self.settle(started)
        return operation

    def settle(self, now: float | None = None) -> None:
        """Complete every operation whose time has come, in time order (called before each
        request). Callbacks may start operations; those due by ``now`` complete too."""
        current = now if now is not None else time.time()
        with self.lock:
            if self._settling:
                return
            self._settling = True
            try:
                while True:
                    due = [
                        (op.ready_at, op.started, op.id)
                        for op in self._pending.values()
                        if op.ready_at <= current
                    ]
                    if not due:
                        return
                    op = self._pending.pop(heapq.nsmallest(1, due)[0][2])
                    self.clock = op.ready_at
                    if op.fail:
                        op.status = "Failed"
                        op.on_failure()
                    else:
                        op.status = "Succeeded"
                        op.on_success()
            finally:
                self._settling = False

"""Microsoft.Authorization: role definitions (the built-in roles) and role assignments.

Assignments made here are the ones the sandbox enforces on every request, so the
runner's "missing role" hint (``az role assignment create …``) can be followed for real.
"""

from __future__ import annotations

import re
from typing import Any

from .arm_core import Call, Reply, Route, body_object, route
from .errors import BadRequest, Conflict, NotFound
from .odata import matches_filter
from .world import DATA_ACTIONS, NOT_ACTIONS, ROLE_IDS, ROLES, RoleAssignment, scope_covers

__all__ = ["routes"]

NS = "Microsoft.Authorization"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_BY_ID = {v: k for k, v in ROLE_IDS.items()}


def _definition(call: Call, role: str) -> dict[str, Any]:
    guid = ROLE_IDS[role]
    return {
        "id": f"/subscriptions/{call.world.subscription_id}/providers/{NS}/roleDefinitions/{guid}",
        "name": guid,
        "type": f"{NS}/roleDefinitions",
        "properties": {
            "roleName": role,
            "type": "BuiltInRole",
            "description": f"The sandbox's {role} role.",
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(ROLES[role]),
                    "notActions": list(NOT_ACTIONS.get(role, ())),
                    "dataActions": list(DATA_ACTIONS.get(role, ())),
                    "notDataActions": [],
                }
            ],
        },
    }


def _list_definitions(call: Call) -> Reply:
    value = [
        _definition(call, role)
        for role in ROLE_IDS
        if matches_filter(call.query.get("$filter", ""), {"roleName": role, "type": "BuiltInRole"})
    ]
    return Reply(200, {"value": value})


def _get_definition(call: Call) -> Reply:
    role = _BY_ID.get(call.params["id"].lower())
    if role is None:
        raise NotFound(
            "RoleDefinitionDoesNotExist", "The specified role definition does not exist."
        )
    return Reply(200, _definition(call, role))


def _assignment(call: Call, a: RoleAssignment) -> dict[str, Any]:
    sub = call.world.subscription_id
    return {
        "id": a.id,
        "name": a.id.rsplit("/", 1)[-1],
        "type": f"{NS}/roleAssignments",
        "properties": {
            "roleDefinitionId": f"/subscriptions/{sub}/providers/{NS}/roleDefinitions/"
            f"{ROLE_IDS[a.role]}",
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "scope": a.scope,
        },
    }


def _scope(call: Call) -> str:
    return call.params.get("scope") or "/"


def _list_assignments(call: Call) -> Reply:
    scope = _scope(call)
    expression = call.query.get("$filter", "")
    at_scope = "atscope()" in expression.lower()
    shown = []
    for a in call.world.assignments:
        above = scope_covers(a.scope, scope)
        if not above and (at_scope or not scope_covers(scope, a.scope)):
            continue
        if matches_filter(expression, {"principalId": a.principal_id}):
            shown.append(_assignment(call, a))
    return Reply(200, {"value": shown})


def _find(call: Call) -> RoleAssignment | None:
    wanted = f"{_scope(call).rstrip('/')}/providers/{NS}/roleAssignments/{call.params['name']}"
    return next((a for a in call.world.assignments if a.id.lower() == wanted.lower()), None)


def _get_assignment(call: Call) -> Reply:
    found = _find(call)
    if found is None:
        raise NotFound("RoleAssignmentNotFound", "The role assignment was not found.")
    return Reply(200, _assignment(call, found))


def _put_assignment(call: Call) -> Reply:
    props = body_object(call).get("properties") or {}
    name = call.params["name"]
    if not _GUID.fullmatch(name):
        raise BadRequest(
            "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid: not a GUID."
        )
    role = _BY_ID.get(str(props.get("roleDefinitionId", "")).rsplit("/", 1)[-1].lower())
    if role is None:
        raise BadRequest(
            "RoleDefinitionDoesNotExist", "The specified role definition with ID does not exist."
        )
    principal = str(props.get("principalId", ""))
    if call.world.find_identity(principal_id=principal) is None:
        raise BadRequest(
            "PrincipalNotFound",
            f"Principal {principal.replace('-', '')} does not exist in the directory "
            f"{call.world.tenant_id}.",
        )
    scope = _scope(call)
    if any(
        a.principal_id.lower() == principal.lower()
        and a.role == role
        and a.scope.lower().rstrip("/") == scope.lower().rstrip("/")
        for a in call.world.assignments
    ):
        raise Conflict("RoleAssignmentExists", "The role assignment already exists.")
    assignment = RoleAssignment(
        principal, role, scope, name, str(props.get("principalType") or "ServicePrincipal")
    )
    call.world.assignments.append(assignment)
    return Reply(201, _assignment(call, assignment))


def _delete_assignment(call: Call) -> Reply:
    found = _find(call)
    if found is None:
        return Reply(204)
    call.world.assignments = [a for a in call.world.assignments if a.id != found.id]
    return Reply(200, _assignment(call, found))


def routes() -> list[Route]:
    """Role definitions and assignments at any scope."""
    defs = "{scope*}/providers/" + NS + "/roleDefinitions"
    assigns = "{scope*}/providers/" + NS + "/roleAssignments"
    return [
        route("GET", defs, f"{NS}/roleDefinitions/read", _list_definitions, 1),
        route("GET", defs + "/{id}", f"{NS}/roleDefinitions/read", _get_definition, 2),
        route("GET", assigns, f"{NS}/roleAssignments/read", _list_assignments, 1),
        route("GET", assigns + "/{name}", f"{NS}/roleAssignments/read", _get_assignment, 2),
        route("PUT", assigns + "/{name}", f"{NS}/roleAssignments/write", _put_assignment, 2),
        route("DELETE", assigns + "/{name}", f"{NS}/roleAssignments/delete", _delete_assignment, 2),
    ]

"""Template deployments: plan a template's resources, then create them in dependency order.

Planning (at PUT, validate and what-if) evaluates parameters, variables, names, types and
``dependsOn`` (plus the implicit dependency of a ``reference()`` to a resource of the same
template) and refuses what ARM refuses with 400 InvalidTemplate. Running creates each
resource through the ordinary ARM handlers (``Call.invoke``), as a PUT by the deployment's
caller, once everything it depends on has succeeded; independent branches run in
parallel. All of it happens in the world's virtual time: a resource starts at the moment
its last dependency completed, however late the next request comes.
"""

from __future__ import annotations

from typing import Any

from . import deployment_view
from .arm_core import Call, Reply, operation_of
from .deployment_plan import Planned
from .deployment_scope import Scope
from .template_check import check_cycles, check_functions, nodes
from .template_expr import TemplateError, calls, evaluate, is_expression, parse
from .template_functions import functions, lazy_functions, resource_id
from .world import Operation, Resource, World

__all__ = ["Engine", "Planned", "TemplateError"]

_SECURE = ("securestring", "secureobject")
_TYPES = {"string", "securestring", "int", "bool", "object", "secureobject", "array"}


class Engine:
    """Plans and runs one deployment to a resource group."""

    def __init__(
        self,
        call: Call,
        deployment: Resource,
        template: dict[str, Any],
        parameters: dict[str, Any],
    ) -> None:
        if call.invoke is None:
            raise RuntimeError("deployments need an invoker")
        self.world: World = call.world
        self.invoke = call.invoke
        self.deployment = deployment
        self.template = template
        self.sub = call.sub
        rg = call.world.resource_group(call.sub, call.params["rg"])
        self.rg_body = {k: v for k, v in rg.render().items()}
        self.name = deployment.name
        self.given = parameters
        self.parameters: dict[str, Any] = {}
        self.declared: dict[str, str] = {}
        self.resources: dict[str, Planned] = {}
        self.outputs: dict[str, Any] = {}
        self.op: Operation | None = None
        self.started = call.now
        self.finished: float | None = None
        self.state = "Accepted"
        self.error: dict[str, Any] | None = None

    # -- evaluation ---------------------------------------------------------------------
    def resolve(self, value: Any, scope: Scope) -> Any:
        """A template value with every expression in it evaluated."""
        if is_expression(value):
            return evaluate(parse(value[1:-1]), functions(scope), lazy_functions())
        if isinstance(value, str) and value.startswith("[["):
            return value[1:]
        if isinstance(value, dict):
            return {k: self.resolve(v, scope) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, scope) for v in value]
        return value

    def reference(self, target: str, full: bool) -> Any:
        planned = self._find(target)
        rid = planned.id if planned else target
        if not rid.startswith("/"):
            raise TemplateError(f"The resource '{target}' is not defined in the template.")
        reply = self.invoke("GET", f"{rid}?api-version={_any_version(rid)}", None, self.now())
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise TemplateError(f"The Resource '{rid}' was not found (reference).")
        return reply.body if full else reply.body.get("properties", {})

    def now(self) -> float:
        """The virtual time: the completion being processed, or the start of the deployment."""
        return self.world.clock if self.world.clock >= self.started else self.started

    # -- planning -----------------------------------------------------------------------
    def plan(self) -> None:
        """Validate the template and work out every resource and dependency."""
        if not isinstance(self.template, dict) or not isinstance(
            self.template.get("resources", []), list
        ):
            raise TemplateError("The template must be a JSON object with a 'resources' array.")
        check_functions(self.template)
        self._bind_parameters()
        scope = Scope(self)
        specs: list[tuple[dict[str, Any], str | None, str | None]] = [
            (r, None, None) for r in self.template.get("resources", [])
        ]
        while specs:
            spec, parent_type, parent_name = specs.pop(0)
            for planned in self._expand(spec, scope, parent_type, parent_name):
                if planned.key in self.resources:
                    raise TemplateError(
                        f"The resource '{planned.id}' is defined multiple times in a template."
                    )
                self.resources[planned.key] = planned
                for child in spec.get("resources") or []:
                    specs.append((child, planned.type, planned.name))
        for planned in self.resources.values():
            self._link(planned, scope)
        check_cycles(self.resources)

    def _bind_parameters(self) -> None:
        declared = self.template.get("parameters") or {}
        for name in self.given:
            if not any(name.lower() == d.lower() for d in declared):
                raise TemplateError(
                    f"The template parameters '{name}' in the parameters file are not valid; "
                    "they are not present in the original template."
                )
        scope = Scope(self)
        for name, spec in declared.items():
            kind = str((spec or {}).get("type", "string")).lower()
            if kind not in _TYPES:
                raise TemplateError(f"The parameter '{name}' has an invalid type '{kind}'.")
            given = next((v for k, v in self.given.items() if k.lower() == name.lower()), None)
            if isinstance(given, dict) and "value" in given:
                value = given["value"]
            elif isinstance(given, dict) and "reference" in given:
                raise TemplateError(f"Key Vault references are not served (parameter '{name}').")
            elif "defaultValue" in (spec or {}):
                value = self.resolve(spec["defaultValue"], scope)
            else:
                raise TemplateError(
                    f"Deployment template validation failed: 'The value for the template "
                    f"parameter '{name}' at line '1' and column '1' is not provided."
                )
            allowed = (spec or {}).get("allowedValues")
            if allowed is not None and value not in allowed:
                raise TemplateError(
                    f"The provided value '{value}' for the template parameter '{name}' is not "
                    f"valid. The parameter value is not part of the allowed value(s): "
                    f"'{','.join(str(a) for a in allowed)}'."
                )
            self.parameters[name] = value
            self.declared[name] = kind

    def _expand(
        self, spec: dict[str, Any], scope: Scope, parent_type: str | None, parent_name: str | None
    ) -> list[Planned]:
        copy = spec.get("copy")
        count = 1
        if isinstance(copy, dict):
            count = int(self.resolve(copy.get("count", 1), scope))
        out = []
        for i in range(count):
            scope.index = i if copy else None
            type_ = str(self.resolve(spec.get("type", ""), scope))
            name = str(self.resolve(spec.get("name", ""), scope))
            # A nested resource gives its type and name relative to its parent, or in full.
            if parent_type and "/" not in type_:
                type_, name = f"{parent_type}/{type_}", f"{parent_name}/{name}"
            if not type_ or not name or type_.count("/") != name.count("/") + 1:
                raise TemplateError(
                    f"The template resource '{name}' for type '{type_}' has an incorrect "
                    "segment length. A nested resource type must have identical number of "
                    "segments as its resource name."
                )
            version = str(spec.get("apiVersion") or "")
            if not version:
                raise TemplateError(f"The template resource '{name}' has no apiVersion.")
            rid = resource_id(self.sub, str(self.rg_body["name"]), type_, name.split("/"))
            planned = Planned(rid, type_, name, version, spec, scope.index)
            if parent_type:
                parent_id = rid.rsplit("/", 2)[0]
                planned.depends.add(parent_id.lower())
            out.append(planned)
        scope.index = None
        return out

    def _link(self, planned: Planned, scope: Scope) -> None:
        scope.index = planned.copy_index
        for dep in self.resolve(planned.spec.get("dependsOn") or [], scope):
            found = self._find_all(str(dep))
            if not found:
                raise TemplateError(f"The resource '{dep}' is not defined in the template.")
            planned.depends |= {p.key for p in found if p.key != planned.key}
        # ARM adds a dependency for reference() to a resource of the same template.
        for node in nodes(planned.spec.get("properties")):
            for ref in calls(node):
                if ref.name != "reference" or not ref.args:
                    continue
                try:
                    target = evaluate(ref.args[0], functions(scope), lazy_functions())
                except TemplateError:
                    continue
                other = self._find(str(target))
                if other is not None and other.key != planned.key:
                    planned.depends.add(other.key)
        planned.depends = {d for d in planned.depends if d in self.resources}
        scope.index = None

    def _find_all(self, ref: str) -> list[Planned]:
        key = ref.lower().rstrip("/")
        exact = [p for p in self.resources.values() if p.key == key]
        if exact:
            return exact
        by_type_name = [p for p in self.resources.values() if f"{p.type}/{p.name}".lower() == key]
        if by_type_name:
            return by_type_name
        by_copy = [
            p for p in self.resources.values()
            if str((p.spec.get("copy") or {}).get("name", "")).lower() == key
        ]  # fmt: skip
        return by_copy or [p for p in self.resources.values() if p.name.lower() == key]

    def _find(self, ref: str) -> Planned | None:
        found = self._find_all(ref)
        return found[0] if len(found) == 1 else None

    # -- running ------------------------------------------------------------------------
    def start(self, op: Operation) -> None:
        """Run from now on, completing ``op`` (the deployment's own operation) at the end."""
        self.op = op
        op.next_event = self._next_event
        self.state = "Running"
        self._advance()

    def cancel(self) -> None:
        """Stop starting resources; the running ones finish, the deployment is Canceled."""
        for planned in self.resources.values():
            if planned.state == "Pending":
                planned.state = "Skipped"
        self.state = "Canceled"
        self.finished = self.now()
        if self.op is not None:
            self.op.ready_at = self.finished
            self.op.fail = True
            self.op.error = {
                "code": "DeploymentCanceled",
                "message": "The deployment was canceled.",
            }
            self.op = None

    def _next_event(self) -> float:
        running = [p.op.ready_at for p in self.resources.values() if p.op and p.state == "Running"]
        return min(running) if running else self.now()

    def _advance(self) -> None:
        now = self.now()
        for planned in self.resources.values():
            if planned.state != "Pending":
                continue
            states = [self.resources[d].state for d in planned.depends]
            if any(s == "Failed" or s == "Skipped" for s in states):
                planned.state = "Skipped"
            elif all(s == "Succeeded" for s in states):
                self._run(planned, now)
        if any(p.state in ("Pending", "Running") for p in self.resources.values()):
            if not any(p.state == "Running" for p in self.resources.values()):
                self._advance()  # skips cascade
            return
        self._finish(now)

    def _run(self, planned: Planned, now: float) -> None:
        planned.state, planned.started = "Running", now
        scope = Scope(self)
        scope.index = planned.copy_index
        try:
            body = {
                k: self.resolve(v, scope)
                for k, v in planned.spec.items()
                if k not in ("type", "name", "apiVersion", "dependsOn", "copy", "resources",
                             "condition", "comments", "scope")
            }  # fmt: skip
            if "condition" in planned.spec and not self.resolve(planned.spec["condition"], scope):
                self._done(planned, True, None, "OK")
                return
        except TemplateError as exc:
            self._done(planned, False, {"code": "InvalidTemplate", "message": str(exc)}, "")
            return
        reply = self.invoke("PUT", f"{planned.id}?api-version={planned.api_version}", body, now)
        self._track(planned, reply)

    def _track(self, planned: Planned, reply: Reply) -> None:
        code = {200: "OK", 201: "Created", 202: "Accepted"}.get(reply.status, str(reply.status))
        if reply.status >= 400:
            error = (reply.body or {}).get("error") if isinstance(reply.body, dict) else None
            self._done(planned, False, error or {"code": str(reply.status)}, code)
            return
        op = operation_of(reply, self.world)
        if op is None or op.status != "InProgress":
            ok = op is None or op.status == "Succeeded"
            self._done(planned, ok, None if ok or op is None else op.error, code)
            return
        planned.op = op
        succeeded, failed = op.on_success, op.on_failure

        def on_success() -> None:
            succeeded()
            self._done(planned, True, None, code)

        def on_failure() -> None:
            failed()
            error = op.error or {
                "code": "ResourceDeploymentFailure",
                "message": f"The resource operation completed with terminal provisioning "
                f"state 'Failed' ({planned.type}/{planned.name}).",
            }
            self._done(planned, False, error, code)

        op.on_success, op.on_failure = on_success, on_failure

    def _done(self, planned: Planned, ok: bool, error: dict[str, Any] | None, code: str) -> None:
        planned.state = "Succeeded" if ok else "Failed"
        planned.finished = self.now()
        planned.status_code = code or ("OK" if ok else "BadRequest")
        planned.error = error
        if self.op is not None and self.state == "Running":
            self._advance()

    def _finish(self, now: float) -> None:
        failed = [p for p in self.resources.values() if p.state == "Failed"]
        if not failed:
            try:
                self.outputs = self._outputs()
            except TemplateError as exc:
                failed_error = {"code": "DeploymentOutputEvaluationFailed", "message": str(exc)}
                self.error = self._failure([failed_error])
        else:
            self.error = self._failure([p.error or {} for p in failed])
        self.state = "Failed" if self.error else "Succeeded"
        self.finished = now
        if self.op is not None:
            self.op.ready_at = now
            self.op.fail = self.error is not None
            self.op.error = self.error

    def _failure(self, details: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "code": "DeploymentFailed",
            "target": self.deployment.id,
            "message": "At least one resource deployment operation failed. Please list "
            "deployment operations for details. Please see "
            "https://aka.ms/arm-deployment-operations for usage details.",
            "details": details,
        }

    def _outputs(self) -> dict[str, Any]:
        scope = Scope(self)
        out = {}
        for name, spec in (self.template.get("outputs") or {}).items():
            kind = str(spec.get("type", "string"))
            out[name] = {"type": kind[:1].upper() + kind[1:], "value": self.resolve(
                spec.get("value"), scope)}  # fmt: skip
        return out

    # -- what clients read --------------------------------------------------------------
    def render_properties(self) -> dict[str, Any]:
        """The deployment's ``properties`` as ARM shows them (secure values never)."""
        return deployment_view.properties(self)

    def operations(self) -> list[dict[str, Any]]:
        """The deployment operations: one per resource started."""
        return deployment_view.operations(self)


def _any_version(rid: str) -> str:
    from . import catalog

    namespace = rid.split("/providers/", 1)[-1].split("/", 1)[0]
    versions = catalog.api_versions(namespace) or ("2024-11-01",)
    return next((v for v in versions if "preview" not in v), versions[0])

"""Script jobs, webhookd style: any executable; parameters as environment variables, the
request body as ``$1``, the exit code decides the run's state.

Leading comments describe it and declare its settings::

    #!/bin/sh
    # Deploy the site.
    # runner-param: site required pattern=^[a-z0-9-]+$ -- the site to deploy
    # runner-timeout: 300
    # runner-lock: site:{site}
    # runner-secret: token
    # runner-output-limit: 128M
    # runner-limit: nproc=64 as=2G

Parameters come from the query string, and from the body (which is always ``$1`` too): a
form's fields (``curl -d 'site=s1'``), and, for a script that declares parameters, the
fields of a JSON object body named like one of them (the rest of a webhook payload stays
in ``$1``). See :mod:`runner.kinds.script_params` for declarations.
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from runner.bodies import FORM, BodyError, as_text, form_pairs, json_object
from runner.errors import JobLoadError, ParameterError, ParameterProblem
from runner.kinds.base import Admitted, Host, Job, Sink, Submission, lock_fields, parse_size
from runner.kinds.process import run_script
from runner.kinds.script_params import DeclarationError, Declared, ScriptParam
from runner.output import Carry
from runner.params import PARAM_NAME, REDACTED
from runner.records import EV_ERROR, EV_OUTPUT, RunRecord
from runner.settings import LimitSettings

# The environment a script starts from: enough to run, nothing of the runner's own secrets.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL")
# Lower-case names that programs honour anyway (curl, wget, pip read lower-case proxies).
HONOURED = frozenset(("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy"))
HEADER_LINES = 50
BODY = "body"  # as a # runner-secret: name, the request body

# ``# runner-limit:`` names → the resource limit each sets (soft and hard) for the script.
LIMITS = {
    "nproc": resource.RLIMIT_NPROC,
    "as": resource.RLIMIT_AS,
    "nofile": resource.RLIMIT_NOFILE,
}
_AMOUNT = re.compile(r"(\d+)([kmgt]?)", re.IGNORECASE)


def parse_limits(text: str) -> list[tuple[int, int]]:
    """``nproc=64 as=2G`` → [(RLIMIT_NPROC, 64), (RLIMIT_AS, 2 GiB)]; ValueError says why.

    Sizes take K, M, G or T (powers of 1024); ``as`` below 16M is refused, since no
    program starts in less.
    """
    limits = []
    for item in text.split():
        name, _, value = item.partition("=")
        match = _AMOUNT.fullmatch(value)
        if name not in LIMITS or match is None:
            raise ValueError(f"{item!r}: expected NAME=NUMBER with NAME one of {', '.join(LIMITS)}")
        number, unit = int(match[1]), match[2].lower()
        if unit and name != "as":
            raise ValueError(f"{item!r}: {name} is a count, not a size")
        number <<= 10 * " kmgt".index(unit or " ")
        if name == "as" and number < 16 << 20:
            raise ValueError(f"{item!r}: at least 16M")
        limits.append((LIMITS[name], number))
    return limits


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The few variables of the runner's environment that a script inherits."""
    return {k: environ[k] for k in BASE_ENV if k in environ}


def check_names(names: list[str], env: Mapping[str, str]) -> list[ParameterProblem]:
    """Refuse parameter names that would shadow the script's environment.

    Parameter names are already lower-case ``[a-z_][a-z0-9_]*``, which rules out PATH,
    LD_PRELOAD, BASH_ENV and the like; what is left to refuse is a name equal (ignoring
    case) to a variable the script gets from the runner, and lower-case names that
    programs honour.
    """
    taken = {k.lower() for k in env}
    problems = []
    for name in names:
        if not PARAM_NAME.match(name):
            continue  # already reported as a bad name
        if name in HONOURED or name.lower() in taken or name.startswith("runner_"):
            problems.append(
                ParameterProblem(name, "this name is reserved: it would shadow the environment")
            )
    return problems


@dataclass(frozen=True, eq=False)
class ScriptJob(Job):
    """A job that is an executable file."""

    kind: ClassVar[str] = "script"
    delivery_body_is_params: ClassVar[bool] = False

    secrets: frozenset[str] = frozenset()  # ``# runner-secret:`` names
    # ``# runner-param:`` lines; None: the script takes any parameter (webhookd style).
    declared: Declared | None = None
    limits: tuple[tuple[int, int], ...] = ()  # ``# runner-limit:`` (resource, value) pairs

    @classmethod
    def name_of(cls, file: Path) -> str | None:
        if file.suffix == ".py" or not (file.is_file() and os.access(file, os.X_OK)):
            return None  # READMEs, data files: not jobs
        return file.name.split(".", 1)[0]

    @classmethod
    def load(cls, path: str, file: Path) -> ScriptJob:
        """Description from the leading comment block; ``# runner-…:`` settings."""
        lines: list[str] = []
        timeout: float | None = None
        lock: str | None = None
        limit: int | None = None
        secrets: set[str] = set()
        params: list[ScriptParam] = []
        limits: list[tuple[int, int]] = []
        try:
            with file.open(encoding="utf-8", errors="replace") as fh:
                head = [fh.readline() for _ in range(HEADER_LINES)]
        except OSError as exc:
            raise JobLoadError(f"{file}: cannot be read: {exc}") from exc
        for i, line in enumerate(head):
            if i == 0 and line.startswith("#!"):
                continue
            if not line.startswith("#"):
                break
            text = line[1:].strip()
            key, _, value = text.partition(":")
            if key == "runner-timeout":
                try:
                    timeout = float(value)
                except ValueError:
                    raise JobLoadError(f"{file}: runner-timeout must be seconds") from None
            elif key == "runner-lock":
                lock = value.strip()
            elif key == "runner-output-limit":
                try:
                    limit = parse_size(value)
                except ValueError as exc:
                    raise JobLoadError(f"{file}: runner-output-limit: {exc}") from None
            elif key == "runner-secret":
                secrets.update(n.strip() for n in value.split(",") if n.strip())
            elif key == "runner-limit":
                try:
                    limits += parse_limits(value)
                except ValueError as exc:
                    raise JobLoadError(f"{file}: runner-limit {exc}") from None
            elif key == "runner-param":
                try:
                    params.append(_declaration(value, params))
                except DeclarationError as exc:
                    raise JobLoadError(f"{file}: line {i + 1}: runner-param: {exc}") from None
            else:
                lines.append(text)
        description = "\n".join(lines).strip()
        declared = _declared(file, params, secrets, lock)
        secrets |= {p.name for p in params if p.secret}
        return cls(path, file, description, timeout, lock, limit, frozenset(secrets), declared,
                   tuple(limits))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        if self.limits:
            names = {res: name for name, res in LIMITS.items()}
            described["limits"] = {names[res]: value for res, value in self.limits}
        return described

    def schema(self) -> dict[str, Any]:
        if self.declared is not None:
            return self.declared.schema()
        # Any webhookd-style parameters, passed as environment variables.
        schema: dict[str, Any] = {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
        }
        if self.secrets:
            schema["properties"] = {
                name: {"type": "string", "writeOnly": True, "x-secret": True}
                for name in sorted(self.secrets)
            }
        return schema

    @property
    def secret_names(self) -> frozenset[str]:
        return self.secrets

    def body_schema(self) -> dict[str, Any]:
        content: dict[str, Any] = {}
        if self.declared is not None:
            content["application/x-www-form-urlencoded"] = {"schema": self.schema()}
            content["application/json"] = {"schema": {"type": "object"}}
        content["*/*"] = {"schema": {"type": "string"}}
        return {
            "required": False,
            "content": content,
            "description": "passed to the script as $1; a form's fields (and, for a script "
            "that declares parameters, a JSON object's fields of those names) are parameters",
        }

    def body_params(self, body: bytes, ctype: str, limits: LimitSettings) -> list[tuple[str, Any]]:
        """A form's fields; else, for a script that declares parameters, a JSON object's
        fields of their names. The body stays ``$1`` whatever it holds.

        curl labels every ``-d`` body a form, JSON and plain text too: a body is taken as
        a form only if it is one, ``name=value`` pairs with parameter names.
        """
        if len(body) > limits.max_script_body_bytes:
            return []  # refused as $1 in admit, saying so
        if ctype == FORM:
            try:
                pairs = form_pairs(body, len(body), strict=True)
            except BodyError:
                pairs = []
            if pairs and all(PARAM_NAME.match(name) for name, _ in pairs):
                return list(pairs)
        if self.declared is None:
            return []
        try:
            doc = json_object(body)
        except BodyError:
            return []
        return [(n, as_text(doc[n])) for n in self.declared.names if doc.get(n) is not None]

    def admit(
        self,
        raw: Mapping[str, Any],
        body: bytes,
        limits: LimitSettings,
        script_env: Mapping[str, str],
        problems: list[ParameterProblem],
    ) -> Admitted:
        if b"\x00" in body:
            # $1 is a C string: a NUL cannot be passed, and would cut the body short.
            problems.append(ParameterProblem("body", "a script's body cannot contain a NUL byte"))
        if len(body) > limits.max_script_body_bytes:
            problems.append(
                ParameterProblem(
                    "body", f"a script's body is at most {limits.max_script_body_bytes} bytes"
                )
            )
        problems += check_names(list(raw), script_env)
        values = {k: str(as_text(v)) for k, v in raw.items() if v is not None}
        if self.declared is not None:
            values = self.declared.validate(values, problems)
        if problems:
            raise ParameterError(self.path, problems)
        recorded = {k: REDACTED if k in self.secrets else v for k, v in values.items()}
        secrets = [v for k, v in values.items() if k in self.secrets and v]
        # The body ($1) is kept with the run so that a queued run can resume after a
        # restart — unless the script declares it secret (# runner-secret: body).
        if BODY in self.secrets and body:
            return Admitted(values, recorded, [*secrets, body.decode("utf-8", "replace")], None)
        return Admitted(values, recorded, secrets, body)

    async def invoke(
        self,
        sub: Submission,
        run: RunRecord,
        sink: Sink,
        mask: Callable[[str], str],
        host: Host,
    ) -> int:
        env = dict(host.script_env)
        env.update(sub.values)
        env.update(RUNNER_RUN_ID=run.id, RUNNER_JOB=run.job)

        carries = {EV_OUTPUT: Carry(mask), EV_ERROR: Carry(mask)}

        def emit(kind: str, text: str, continued: bool) -> None:
            carry = carries[kind]
            if not continued and not carry.held:
                sink(kind, mask(text))
                return
            # A piece of a long line: masked as part of the whole (see output.Carry).
            shown = carry.feed(text, last=not continued)
            if shown or not continued:
                sink(kind, shown)

        return await run_script(
            self.file,
            env=env,
            body=sub.body,
            emit=emit,
            kill_grace=host.kill_grace,
            spawner=host.spawner,
            limits=self.limits,
        )


def _declaration(text: str, earlier: list[ScriptParam]) -> ScriptParam:
    """One ``# runner-param:`` line, checked against the names a script may not take."""
    param = ScriptParam.parse(text)
    if any(p.name == param.name for p in earlier):
        raise DeclarationError(f"{param.name} is declared twice")
    reserved = check_names([param.name], dict.fromkeys(BASE_ENV, ""))
    if reserved:
        raise DeclarationError(f"{param.name}: {reserved[0].reason}")
    return param


def _declared(
    file: Path, params: list[ScriptParam], secrets: set[str], lock: str | None
) -> Declared | None:
    """The script's declared parameters (None when it declares none), ``# runner-secret:``
    names among them marked secret; the lock's fields must be among them."""
    if not params:
        return None
    names = [p.name for p in params]
    # runner-secret names a secret the script takes: it takes it whether declared or not.
    extra = sorted(secrets - set(names) - {BODY})
    params = [p.with_secret() if p.name in secrets else p for p in params]
    params += [ScriptParam(name, secret=True) for name in extra]
    unknown = [f for f in lock_fields(lock or "") if f not in names]
    if unknown:
        raise JobLoadError(f"{file}: runner-lock uses undeclared parameters: {', '.join(unknown)}")
    return Declared(tuple(params))

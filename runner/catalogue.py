"""Job discovery: which files are jobs, at which URL paths.

The catalogue is built once at start-up and is the only way a request reaches a file: a
request path is looked up as a dictionary key, never joined onto a folder. So no spelling
of ``..`` — percent-encoded, double-encoded, backslashed — can name a file the catalogue
did not list. (webhookd joined the path onto its scripts folder and ran
``/..%2fscripts2%2fevil``; that class of bug cannot exist here.)

Rules: path segments match ``[a-z0-9][a-z0-9_-]*``; hidden files, ``_private`` names and
``__pycache__`` are skipped; ``.py`` files are Python jobs, other executable files are
script jobs; other files are ignored. A symlink that leaves its job folder, a bad name,
or two files claiming one path stop the server with a message naming the files.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import string
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from runner.errors import CatalogueError, JobLoadError
from runner.params import ParamSpec

SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Job:
    """One job: its URL path, file, description and run-time declarations."""

    path: str
    file: Path
    kind: str  # "python" | "script"
    description: str
    timeout: float | None
    lock: str | None
    spec: ParamSpec | None = None  # Python jobs only
    func: Any = None  # Python jobs: the ``run`` coroutine function
    script_secrets: frozenset[str] = frozenset()  # script jobs: ``# runner-secret:`` names
    # Python jobs: ``check(params) -> {name: reason}`` for rules across parameters.
    check: Any = None

    @property
    def lock_fields(self) -> tuple[str, ...]:
        return lock_fields(self.lock) if self.lock else ()

    def describe(self) -> dict[str, Any]:
        """What ``GET /<job>`` and ``GET /_jobs`` show."""
        schema: dict[str, Any]
        if self.spec is not None:
            schema = self.spec.json_schema()
        else:
            # Script jobs take any webhookd-style parameters, passed as env variables.
            schema = {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
            }
            if self.script_secrets:
                schema["properties"] = {
                    name: {"type": "string", "writeOnly": True, "x-secret": True}
                    for name in sorted(self.script_secrets)
                }
        return {
            "path": "/" + self.path,
            "kind": self.kind,
            "description": self.description,
            "timeout": self.timeout,
            "lock": self.lock,
            "parameters": schema,
        }


def lock_fields(template: str) -> tuple[str, ...]:
    """The parameter names a lock template such as ``rg:{rg}`` uses."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


class Catalogue:
    """The jobs on offer, by path."""

    def __init__(self, jobs: dict[str, Job]) -> None:
        self._jobs = dict(sorted(jobs.items()))

    def get(self, path: str) -> Job | None:
        return self._jobs.get(path)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    @classmethod
    def discover(cls, folders: tuple[Path, ...]) -> Catalogue:
        """Scan ``folders`` in order; every problem found is reported together."""
        found: dict[str, Job] = {}
        problems: list[str] = []
        for folder in folders:
            if not folder.is_dir():
                problems.append(f"{folder}: job folder does not exist")
                continue
            for path, file in _candidates(folder, problems):
                if path in found:
                    problems.append(
                        f"/{path} is claimed by two files: {found[path].file} and {file}"
                    )
                    continue
                try:
                    found[path] = _load(path, file)
                except JobLoadError as exc:
                    problems.append(str(exc))
        if problems:
            raise CatalogueError("cannot serve these jobs:\n  " + "\n  ".join(problems))
        return cls(found)


def _candidates(folder: Path, problems: list[str]) -> Iterator[tuple[str, Path]]:
    """(url path, file) for each job file under ``folder``; naming problems collected."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # Skip hidden and private folders, and never descend through a symlink.
        keep = []
        for d in sorted(dirnames):
            if d.startswith((".", "_")):
                continue
            if (here / d).is_symlink():
                target = (here / d).resolve()
                if not target.is_relative_to(root):
                    problems.append(f"{here / d}: symlink leaves the job folder (to {target})")
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith((".", "_")):
                continue
            file = here / name
            is_py = name.endswith(".py")
            if file.is_symlink():
                target = file.resolve()
                if not target.is_relative_to(root):
                    problems.append(f"{file}: symlink leaves the job folder (to {target})")
                    continue
            if not is_py and not (file.is_file() and os.access(file, os.X_OK)):
                continue  # READMEs, data files: not jobs
            stem = name[:-3] if is_py else name.split(".", 1)[0] if "." in name else name
            if is_py and "." in stem:
                problems.append(f"{file}: job names may not contain dots")
                continue
            rel = here.relative_to(root).parts + (stem,)
            bad = [s for s in rel if not SEGMENT.match(s)]
            if bad:
                problems.append(
                    f"{file}: {'/'.join(rel)!r} breaks the naming rule "
                    f"(each part lowercase [a-z0-9][a-z0-9_-]*; bad: {', '.join(bad)})"
                )
                continue
            # Keep the resolved file: what runs is what was checked at start-up.
            yield "/".join(rel), file.resolve()


def _load(path: str, file: Path) -> Job:
    if file.suffix == ".py":
        return _load_python(path, file)
    return _load_script(path, file)


def _import(path: str, file: Path) -> ModuleType:
    name = "runner_jobs." + path.replace("/", ".").replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd loaders
        raise JobLoadError(f"{file}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise JobLoadError(f"{file}: import failed: {type(exc).__name__}: {exc}") from exc
    return module


def _load_python(path: str, file: Path) -> Job:
    module = _import(path, file)
    func = getattr(module, "run", None)
    if func is None or not inspect.iscoroutinefunction(func):
        raise JobLoadError(f"{file}: a Python job defines `async def run(ctx, ...)`")
    doc = inspect.getdoc(module)
    if not doc:
        raise JobLoadError(f"{file}: add a module docstring; it is the job's description")
    try:
        spec = ParamSpec.from_function(path, func)
    except JobLoadError as exc:
        raise JobLoadError(f"{file}: {exc}") from exc
    timeout = getattr(module, "TIMEOUT", None)
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise JobLoadError(f"{file}: TIMEOUT must be a positive number of seconds")
    lock = getattr(module, "LOCK", None)
    if lock is not None:
        if not isinstance(lock, str):
            raise JobLoadError(f"{file}: LOCK must be a string such as 'rg:{{rg}}'")
        unknown = [f for f in lock_fields(lock) if f not in spec.names]
        if unknown:
            raise JobLoadError(f"{file}: LOCK uses unknown parameters: {', '.join(unknown)}")
    check = getattr(module, "check", None)
    if check is not None and (not callable(check) or inspect.iscoroutinefunction(check)):
        raise JobLoadError(f"{file}: check must be a plain function check(params) -> dict")
    return Job(path, file, "python", doc, timeout, lock, spec, func, check=check)


def _load_script(path: str, file: Path) -> Job:
    """Description from the leading comment block; ``# runner-timeout:``/``-lock:`` lines."""
    lines: list[str] = []
    timeout: float | None = None
    lock: str | None = None
    secrets: set[str] = set()
    try:
        with file.open(encoding="utf-8", errors="replace") as fh:
            head = [fh.readline() for _ in range(50)]
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
        elif key == "runner-secret":
            secrets.update(n.strip() for n in value.split(",") if n.strip())
        else:
            lines.append(text)
    description = "\n".join(lines).strip()
    return Job(path, file, "script", description, timeout, lock, script_secrets=frozenset(secrets))

"""Job discovery: which files are jobs, at which URL paths.

The catalogue is built once at start-up and is the only way a request reaches a file: a
request path is looked up as a dictionary key, never joined onto a folder. So no spelling
of ``..`` — percent-encoded, double-encoded, backslashed — can name a file the catalogue
did not list. (webhookd joined the path onto its scripts folder and ran
``/..%2fscripts2%2fevil``; that class of bug cannot exist here.)

Rules: path segments match ``[a-z0-9][a-z0-9_-]*``; hidden files, ``_private`` names and
``__pycache__`` are skipped; each kind of job (:data:`runner.kinds.KINDS`) says which
files it claims; other files are ignored. A symlink that leaves its job folder, a bad name,
or two files claiming one path stop the server with a message naming the files.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path

from runner.errors import CatalogueError, JobLoadError
from runner.kinds import KINDS, Job
from runner.settings import ServerSettings

SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


BUILTIN = "runner.builtin_jobs"


def builtin_folder() -> Path:
    """The built-in jobs: the repository's ``jobs/``, shipped in the wheel as the package
    ``runner.builtin_jobs`` (pyproject.toml maps it), found wherever runner is installed."""
    spec = importlib.util.find_spec(BUILTIN)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogueError(
            f"the built-in jobs ({BUILTIN}) are not installed with runner: reinstall it, "
            "or set builtin_jobs = false"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def folders(server: ServerSettings) -> tuple[Path, ...]:
    """Every folder jobs are discovered in, built-in first."""
    return ((builtin_folder(),) if server.builtin_jobs else ()) + server.jobs


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

    def replace(self, other: Catalogue) -> None:
        """Serve ``other``'s jobs from now on (job folders changed; see runner.reload).
        One assignment: a lookup sees the old jobs or the new ones, never a mix; a run
        already submitted keeps the job it was admitted with."""
        self._jobs = other._jobs

    @classmethod
    def discover(cls, folders: tuple[Path, ...]) -> Catalogue:
        """Scan ``folders`` in order; every problem found is reported together."""
        found: dict[str, Job] = {}
        problems: list[str] = []
        for folder in folders:
            if not folder.is_dir():
                problems.append(f"{folder}: job folder does not exist")
                continue
            for path, file, kind in _candidates(folder, problems):
                if path in found:
                    problems.append(
                        f"/{path} is claimed by two files: {found[path].file} and {file}"
                    )
                    continue
                try:
                    found[path] = kind.load(path, file)
                except JobLoadError as exc:
                    problems.append(str(exc))
        if problems:
            raise CatalogueError("cannot serve these jobs:\n  " + "\n  ".join(problems))
        return cls(found)


def _claim(file: Path) -> tuple[str, type[Job]] | None:
    """The job name ``file`` serves and the kind that claims it, if any does."""
    for kind in KINDS:
        name = kind.name_of(file)
        if name is not None:
            return name, kind
    return None


def _candidates(folder: Path, problems: list[str]) -> Iterator[tuple[str, Path, type[Job]]]:
    """(url path, file, kind) for each job file under ``folder``; problems collected."""
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
            if file.is_symlink():
                try:
                    target = file.resolve(strict=True)
                except (OSError, RuntimeError) as exc:  # a loop, or pointing nowhere
                    problems.append(f"{file}: broken symlink ({exc.__class__.__name__})")
                    continue
                if not target.is_relative_to(root):
                    problems.append(f"{file}: symlink leaves the job folder (to {target})")
                    continue
            try:
                claimed = _claim(file)
            except JobLoadError as exc:
                problems.append(str(exc))
                continue
            if claimed is None:
                continue
            stem, kind = claimed
            rel = here.relative_to(root).parts + (stem,)
            bad = [s for s in rel if not SEGMENT.match(s)]
            if bad:
                problems.append(
                    f"{file}: {'/'.join(rel)!r} breaks the naming rule "
                    f"(each part lowercase [a-z0-9][a-z0-9_-]*; bad: {', '.join(bad)})"
                )
                continue
            # Keep the resolved file: what runs is what was checked at start-up.
            yield "/".join(rel), file.resolve(), kind

"""Jobs added, changed or removed while the server runs are served without a restart.

An extension that polls the job folders (names, sizes and modification times; no file is
read) every ``interval`` seconds and, when they changed, discovers the catalogue again
and swaps it in whole. A folder that fails discovery (a bad name, a job that does not
import) leaves the served jobs as they were and logs what to fix; fixing it reloads.
Polling rather than inotify: it works the same on every filesystem, container volumes
and network shares included, and a scan of a job folder costs a few hundred stat calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from runner.catalogue import Catalogue
from runner.errors import CatalogueError
from runner.hooks import Extension

log = logging.getLogger("runner.jobs")

Fingerprint = frozenset[tuple[str, int, int]]


def fingerprint(folders: tuple[Path, ...]) -> Fingerprint:
    """What changes when a job file is added, removed, renamed, edited or made executable."""
    seen: set[tuple[str, int, int]] = set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            for name in filenames:
                if name.startswith((".", "_")):
                    continue
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(dirpath, name))
                    seen.add((os.path.join(dirpath, name), st.st_mtime_ns, st.st_mode))
    return frozenset(seen)


class CatalogueWatcher(Extension):
    """Rescans ``folders`` every ``interval`` s and swaps changed jobs into ``catalogue``."""

    name = "job-reload"

    def __init__(self, catalogue: Catalogue, folders: tuple[Path, ...], interval: float) -> None:
        self.catalogue = catalogue
        self.folders = folders
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._seen: Fingerprint = frozenset()

    async def start(self) -> None:
        self._seen = fingerprint(self.folders)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:
                log.exception("rescanning the job folders failed")

    def check(self) -> bool:
        """Reload if the folders changed; True when a new catalogue is served."""
        now = fingerprint(self.folders)
        if now == self._seen:
            return False
        self._seen = now
        before = {job.path for job in self.catalogue}
        try:
            fresh = Catalogue.discover(self.folders)
        except CatalogueError as exc:
            log.error("job folders changed, but %s; still serving the jobs as they were", exc)
            return False
        self.catalogue.replace(fresh)
        after = {job.path for job in fresh}
        added, removed = sorted(after - before), sorted(before - after)
        log.info(
            "jobs reloaded: %d served (added: %s; removed: %s)",
            len(after), ", ".join(added) or "none", ", ".join(removed) or "none",
            extra={"event": "jobs_reloaded"},
        )  # fmt: skip
        return True

"""How the command line shows runs and jobs, the same from the local store or a server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from runner.errors import RunnerError


def pairs(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments as parameters."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise RunnerError(f"parameters are KEY=VALUE; got {item!r}")
        out[key] = value
    return out


def runs(rows: Iterable[Mapping[str, Any]], *, as_json: bool) -> None:
    """Run records (``RunRecord.to_json()`` shape): a table, or JSON for scripts."""
    rows = list(rows)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"]))
        dur = f"{r['duration']:.2f}s" if r.get("duration") is not None else "-"
        code = "-" if r.get("exit_code") is None else r["exit_code"]
        print(f"{r['id']}  {when}  {r['state']:11} exit={code!s:4} {dur:>9}  /{r['job']}")


def jobs(described: Iterable[Mapping[str, Any]], *, as_json: bool) -> None:
    """Job descriptions (``Job.describe()`` shape): a table, or JSON."""
    described = list(described)
    if as_json:
        print(json.dumps(described, indent=2))
        return
    for job in described:
        first = job["description"].splitlines()[0] if job.get("description") else ""
        print(f"{job['path']:31} {job['kind']:7} {first}")

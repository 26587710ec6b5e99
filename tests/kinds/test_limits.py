"""Issue 15, item 19: per-job process-count and memory limits for scripts, declared in the
header (``# runner-limit: nproc=64 as=2G``) and held by the kernel (setrlimit)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from runner.errors import JobLoadError
from runner.kinds import ScriptJob
from tests.kinds.conftest import KIND_JOBS

RESULT = re.compile(r"^runner: run=(\S+) state=(\S+) exit=(\S+) duration=([\d.]+)s$")


def test_the_header_limits_hold_in_the_script_and_are_described(serve):
    """nproc=5 as=256M nofile=64: the script's own /proc/<pid>/limits says so (soft and
    hard, so that the script cannot raise them), and GET /<job> shows them."""
    srv = serve(jobs=(KIND_JOBS,))
    with srv.client() as c:
        lines = c.post("/sh/limits").text.splitlines()
        described = c.get("/sh/limits").json()
    # /proc/<pid>/limits: name, soft, hard (and a unit), in columns.
    limits = {cells[0]: cells[1:3] for cells in (re.split(r"\s{2,}", x) for x in lines[:-1])}
    assert limits["Max processes"] == ["5", "5"]
    assert limits["Max address space"] == ["268435456", "268435456"]
    assert limits["Max open files"] == ["64", "64"]
    assert described["limits"] == {"nproc": 5, "as": 256 << 20, "nofile": 64}


def test_a_script_over_its_memory_limit_fails(serve):
    """512 MiB asked under as=256M: the allocation fails, and so does the run."""
    srv = serve(jobs=(KIND_JOBS,))
    with srv.client() as c:
        text = c.post("/sh/limits", params={"try": "memory", "python": sys.executable}).text
    assert "MemoryError" in text
    assert "allocated" not in text
    assert RESULT.match(text.splitlines()[-1]).group(2) == "failed"


def test_a_script_at_its_process_limit_cannot_start_more(serve):
    """nproc=5: the sixth process of the user is refused (as an unprivileged user: the
    kernel does not hold root to RLIMIT_NPROC)."""
    srv = serve(jobs=(KIND_JOBS,))
    with srv.client() as c:
        text = c.post("/sh/limits", params={"try": "processes", "python": sys.executable}).text
    (line,) = [line for line in text.splitlines() if line.startswith("started ")]
    started = int(line.split()[1])
    assert started < 5, line
    assert "Resource temporarily unavailable" in line
    assert RESULT.match(text.splitlines()[-1]).group(2) == "succeeded"


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("nproc=lots", "'nproc=lots': expected NAME=NUMBER with NAME one of nproc, as, nofile"),
        ("stack=8M", "'stack=8M': expected NAME=NUMBER with NAME one of nproc, as, nofile"),
        ("nproc=64K", "'nproc=64K': nproc is a count, not a size"),
        ("as=1M", "'as=1M': at least 16M"),
    ],
)
def test_a_bad_limit_is_refused_when_the_job_loads_naming_the_file(tmp_path: Path, header, why):
    """A limit that cannot be applied stops the job from loading, with the reason."""
    file = tmp_path / "job.sh"
    file.write_text(f"#!/bin/sh\n# runner-limit: {header}\necho hi\n")
    with pytest.raises(JobLoadError) as caught:
        ScriptJob.load("job", file)
    assert str(caught.value) == f"{file}: runner-limit {why}"

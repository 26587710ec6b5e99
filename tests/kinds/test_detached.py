"""Issue 15, item 8: a child that leaves the script's process group (``setsid … &``) neither
holds its run until the timeout nor outlives it."""

from __future__ import annotations

import re
import time

from tests.kinds.conftest import KIND_JOBS, wait_gone

RESULT = re.compile(r"^runner: run=(\S+) state=(\S+) exit=(\S+) duration=([\d.]+)s$")
LEFT = "runner: the script left processes holding its output; killed them"


def _child(text: str) -> int:
    (pid,) = [int(line.split()[1]) for line in text.splitlines() if line.startswith("child ")]
    return pid


def test_a_detached_child_holding_the_output_is_killed_and_the_run_ends_on_time(serve):
    """The script succeeded; its child kept stdout open: about 2 s later the child is
    killed, the run says so and ends succeeded — not timed_out after 20 s."""
    srv = serve(jobs=(KIND_JOBS,))
    t0 = time.monotonic()
    with srv.client(timeout=40) as c:
        text = c.post("/sh/detach", params={"how": "hold", "_timeout": "20"}).text
    took = time.monotonic() - t0
    assert took < 8, f"the run took {took:.1f} s"
    lines = text.splitlines()
    assert LEFT in lines
    assert RESULT.match(lines[-1]).group(2, 3) == ("succeeded", "0")
    wait_gone([_child(text)], within=2)


def test_a_detached_child_with_its_output_redirected_does_not_outlive_a_succeeded_run(serve):
    """A child that let go of the output is ended when the run ends (at once)."""
    srv = serve(jobs=(KIND_JOBS,))
    t0 = time.monotonic()
    with srv.client() as c:
        text = c.post("/sh/detach", params={"how": "redirect"}).text
    assert time.monotonic() - t0 < 2
    assert RESULT.match(text.splitlines()[-1]).group(2, 3) == ("succeeded", "0")
    assert LEFT not in text
    wait_gone([_child(text)], within=2)

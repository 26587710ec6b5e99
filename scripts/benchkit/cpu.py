"""Where a run's CPU goes (issue 13): the whole machine's busy time over one measurement,
and the runner's processes one by one, per run.

With every core busy, runs/s is the machine's cores divided by the CPU a run costs all
processes together (the load generator included), whatever the design; so the CPU per
run says more than runs/s about a change, and splitting it by process says what is left
to win where:

    server    the runner's own process (HTTP, the record, the stream, the log lines)
    helpers   the spawner and its shepherds themselves (script jobs only)
    scripts   the scripts, as their shepherds reaped them
    load      the load generator (wrk), reaped by this process
    machine   every process on the machine, all of the above included
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PARTS = ("server", "helpers", "scripts", "load", "machine")


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores) since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    # user nice system idle iowait irq softirq steal: busy is what ran here (not idle, not
    # waiting for I/O, not the time the hypervisor gave another guest).
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / TICK


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone meanwhile
    return text.rsplit(")", 1)[1].split()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _own_and_reaped(pid: int) -> tuple[float, float]:
    fields = _stat(pid)
    if fields is None:
        return 0.0, 0.0
    own = (int(fields[11]) + int(fields[12])) / TICK
    return own, (int(fields[13]) + int(fields[14])) / TICK


@dataclass
class Sample:
    """CPU seconds so far, by part (see the module's docstring)."""

    seconds: dict[str, float]

    @classmethod
    def take(cls, server_pid: int | None) -> Sample:
        load = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = {"load": load.ru_utime + load.ru_stime, "machine": machine_busy()}
        if server_pid is not None:
            seconds["server"] = _own_and_reaped(server_pid)[0]
            helpers = [_own_and_reaped(pid) for pid in _descendants(server_pid)]
            seconds["helpers"] = sum(own for own, _ in helpers)
            seconds["scripts"] = sum(reaped for _, reaped in helpers)
        return cls(seconds)

    def per_run(self, before: Sample, runs: int) -> dict[str, float]:
        """Microseconds of CPU per run, by part, from ``before`` to this sample.

        Helpers that quit in between take their CPU with them (shepherds are kept and
        reused, so under a steady load few do)."""
        runs = max(runs, 1)
        return {
            part: 1e6 * (self.seconds[part] - before.seconds[part]) / runs
            for part in PARTS
            if part in self.seconds and part in before.seconds
        }

"""The server under test: ``python -m runner serve`` in a fresh state dir, its memory
and CPU, and py-spy profiles of it under load."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benchkit.constants import JOBS, ROOT, VENV_PYTHON
from benchkit.http import fetch

# -- the server under test ---------------------------------------------------------------


class Server:
    """``python -m runner serve`` in a fresh state dir; stopped by :meth:`stop`."""

    def __init__(
        self,
        python: str,
        workdir: Path,
        log_level: str,
        env: dict[str, str],
        wrap: tuple[str, ...] = (),
    ) -> None:
        self.python = python
        self.workdir = workdir
        self.log_level = log_level
        self.extra_env = env
        # Between the interpreter and ``-m runner``: ``("-m", "cProfile", "-o", FILE)``.
        self.wrap = wrap
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0

    def start(self, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        env.update(
            RUNNER_BUILTIN_JOBS="false",
            RUNNER_MAX_RUNNING="64",
            RUNNER_MAX_QUEUED="10000",
            # Load from one address on purpose: the per-principal limit is not measured here.
            RUNNER_RATE_LIMIT="0",
            RUNNER_LOG_LEVEL=self.log_level,
            RUNNER_LOG_FORMAT="json",
            RUNNER_DRAIN_TIMEOUT="2",
            RUNNER_KILL_GRACE="1",
        )
        env.update(self.extra_env)
        state = self.workdir / "state"
        out = self.workdir / "server.out"
        self.err_path = self.workdir / "server.err"
        cmd = [self.python, *self.wrap, "-m", "runner", "serve", "--port", "0", "--no-tls"]
        cmd += ["--state-dir", str(state), "--jobs", str(JOBS)]
        with out.open("wb") as stdout, self.err_path.open("wb") as stderr:
            # Own session: a Ctrl-C in the terminal reaches only us; we stop the server.
            self.proc = subprocess.Popen(
                cmd, stdout=stdout, stderr=stderr, cwd=self.workdir, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self.url:
            first = out.read_text().split("\n", 1)
            if len(first) == 2 and first[0].startswith("runner listening on "):
                self.url = first[0].removeprefix("runner listening on ").strip()
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not print its URL in time")
            time.sleep(0.02)
        self.port = int(self.url.rsplit(":", 1)[1])
        while True:
            with contextlib.suppress(OSError):
                if fetch(self.port, "GET", "/_ready", timeout=5).status == 200:
                    return
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("GET /_ready did not answer 200 in time")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.err_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{tail}")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user + system) of the server itself, and of its reaped children."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        own = (int(fields[11]) + int(fields[12])) / tick
        children = (int(fields[13]) + int(fields[14])) / tick
        return own, children

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        """SIGTERM (drain), then SIGKILL if it does not stop within a few seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
                return


# -- profiling ---------------------------------------------------------------------------


def summarize_profile(raw: Path, top: int) -> str:
    """Top functions by own samples and by inclusive samples from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f.replace(str(ROOT) + "/", "") for f in frames]
        frames = [re.sub(r"\S*/site-packages/", "", f) for f in frames]
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples (idle excluded)", "  own time:"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive time:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top * 2)]
    return "\n".join(lines)


def profile_server(
    server: Server, out: Path, seconds: float, load: Callable[[], object], top: int
) -> str:
    """Run ``load`` while py-spy samples the server; return a summary."""
    py_spy = shutil.which("py-spy") or str(VENV_PYTHON.parent / "py-spy")
    if not Path(py_spy).exists():
        return "  py-spy not found: .venv/bin/pip install py-spy"
    cmd = [py_spy, "record", "--pid", str(server.pid), "--rate", "200", "--format", "raw"]
    cmd += ["--duration", str(max(1, round(seconds))), "--output", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # let py-spy attach
        load()
        spy.wait(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if not out.exists():
        return f"  py-spy wrote nothing: {spy.stderr.read().decode()[-500:] if spy.stderr else ''}"
    return summarize_profile(out, top)

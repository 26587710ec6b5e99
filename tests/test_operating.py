"""Frictions of issue 11, each as a user meets it: the start-up line, `runner run` in a
terminal, failures said once, `runs --job /x`, help and version, jobs without a restart."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from runner.catalogue import Catalogue
from runner.policy import JobPolicy
from runner.reload import CatalogueWatcher
from runner.server import banner, prepare
from tests.conftest import ROOT, TEST_JOBS, make_settings

PW = "Term-Passw0rd-2026"


def _terminal(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """Run the runner with stdout and stderr on a pseudo-terminal, as a person would."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    cmd = [sys.executable, "-m", "runner", *args]
    tty = {"stdout": follower, "stderr": follower, "stdin": subprocess.DEVNULL}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, **tty)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(10), out.decode().replace("\r\n", "\n")


def test_runner_run_in_a_terminal_shows_only_the_jobs_output_and_runner_lines(tmp_path):
    """vm/create on the sandbox in a terminal: no log records, no Azure SDK header dumps;
    every line is the job's own or starts with `runner:` (issue 11 counted 328 lines)."""
    code, out = _terminal(["run", "vm/create", "rg=term", "vmname=term-1", f"pw={PW}",
                           "--sandbox", "--state-dir", str(tmp_path / "s")], ROOT)  # fmt: skip
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith(("{", "INFO", "Request URL"))], out
    assert not [line for line in lines if "azure.core" in line or "Authorization" in line], out
    assert "created virtual machine term-1" in out and lines[-1].startswith("runner: run=")
    assert PW not in out
    assert len(lines) < 40, out


def test_a_failure_the_job_explained_is_printed_once(tmp_path):
    """JobError: its message once, then the result line (it came twice)."""
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", "py/fail", "--jobs", str(TEST_JOBS),
         "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")},
             "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_LEVEL": "warning"},
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.count("the deployment target refused the change") == 1, done.stderr


def test_runs_takes_the_job_with_or_without_its_leading_slash(tmp_path):
    """`runner runs --job /py/lines` finds what `--job py/lines` finds."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")},
           "RUNNER_BUILTIN_JOBS": "false", "RUNNER_LOG_LEVEL": "warning"}  # fmt: skip
    common = ["--jobs", str(TEST_JOBS), "--state-dir", str(tmp_path)]
    subprocess.run([sys.executable, "-m", "runner", "run", "py/lines", "n=1", *common],
                   env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    found = [
        subprocess.run(
            [sys.executable, "-m", "runner", "runs", "--job", job, *common],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout  # fmt: skip
        for job in ("/py/lines", "py/lines")
    ]
    assert found[0] == found[1] and "/py/lines" in found[0]


def test_help_lists_every_command_and_version_answers():
    """Top-level --help names passwd, token and sandbox; --version answers."""
    text = subprocess.run([sys.executable, "-m", "runner", "--help"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    for command in ("serve", "run", "call", "passwd", "token", "sandbox"):
        assert f"    {command} " in text, command
    assert "``" not in text
    version = subprocess.run([sys.executable, "-m", "runner", "--version"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert version.startswith("runner ")


def test_the_start_up_line_suggests_a_job_a_plain_curl_can_start(tmp_path, make_htpasswd):
    """Not the first job alphabetically when it is webhook-verified: one that curl can
    run, with its required parameters and the credentials it needs; and the page's URL."""
    settings = make_settings(
        tmp_path, htpasswd=make_htpasswd(alice="alice-pw-123"),
        policies=(JobPolicy("py/*", verify="slack", secrets=("env:NOPE",)),),
    )  # fmt: skip
    os.environ["NOPE"] = "slack-secret-for-banner"
    try:
        prepared = prepare(settings)
    finally:
        del os.environ["NOPE"]
    try:
        text = banner(prepared)
    finally:
        prepared.sock.close()
        prepared.runtime.resources.close()
    tried = next(line for line in text.splitlines() if line.startswith("try:"))
    assert "/py/" not in tried and "/sh/" in tried, tried
    assert "--user USER" in tried
    assert f"web page: {prepared.url}/" in text


def test_a_job_added_while_serving_is_served_without_a_restart(tmp_path):
    """A new job file appears in the catalogue at the next rescan; a broken one leaves the
    served jobs as they were."""
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "one.py").write_text('"""One."""\nasync def run(ctx):\n    ctx.print("1")\n')
    catalogue = Catalogue.discover((folder,))
    watcher = CatalogueWatcher(catalogue, (folder,), interval=1)
    from runner.reload import fingerprint

    watcher._seen = fingerprint((folder,))
    assert watcher.check() is False
    (folder / "two.py").write_text('"""Two."""\nasync def run(ctx):\n    ctx.print("2")\n')
    assert watcher.check() is True
    assert catalogue.get("two") is not None
    (folder / "Bad.py").write_text('"""Bad name."""\nasync def run(ctx):\n    pass\n')
    assert watcher.check() is False
    assert [j.path for j in catalogue] == ["one", "two"]


def test_a_running_server_serves_a_job_added_to_its_folder(serve, tmp_path):
    """End to end: POST to a job written after the server started answers with its run."""
    folder = tmp_path / "live-jobs"
    folder.mkdir()
    srv = serve(jobs=(folder,), job_rescan=0.2)
    with srv.client() as c:
        assert c.post("/late").status_code == 404
        (folder / "late.py").write_text('"""Late."""\nasync def run(ctx):\n    ctx.print("here")\n')
        deadline = time.monotonic() + 10
        while (r := c.post("/late", headers={"Prefer": "wait"})).status_code == 404:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert r.status_code == 200 and r.text.startswith("here\n")

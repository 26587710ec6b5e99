"""The ``runner`` command: run, jobs, runs, logs, and where its settings come from."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.settings import Settings, load
from tests.conftest import ROOT, TEST_JOBS

RESULT = re.compile(r"^runner: run=(\S+) state=(\S+) exit=(\S+) duration=([\d.]+)s$")
# Every test job, found the way a person would list the folder: its files, sorted.
JOB_PATHS = sorted(
    f"{f.parent.name}/{f.name.split('.')[0]}" for f in TEST_JOBS.glob("*/*") if f.is_file()
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any RUNNER_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env["PYTHONPATH"] = str(ROOT)
    env["RUNNER_BUILTIN_JOBS"] = "false"
    env.update(extra)
    return env


def runner(
    tmp_path: Path, *args: str, state: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m runner ARGS --jobs tests/jobs [--state-dir tmp/state]`` in ``tmp_path``."""
    cmd = [sys.executable, "-m", "runner", *args, "--jobs", str(TEST_JOBS)]
    if state:
        cmd += ["--state-dir", str(tmp_path / "state")]
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, env=env or clean_env(), timeout=30
    )


def result_of(stderr: str) -> re.Match[str]:
    """The fixed result line at the end of a run's stderr."""
    m = RESULT.match(stderr.splitlines()[-1])
    assert m, stderr
    return m


# -- runner run ----------------------------------------------------------------------


def test_run_prints_output_lines_on_stdout_and_exits_0(tmp_path):
    """`runner run py/echo rg=x count=2` prints the job's lines on stdout and exits 0."""
    done = runner(tmp_path, "run", "py/echo", "rg=x", "count=2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "rg=x size=small flag=False i=0",
        "rg=x size=small flag=False i=1",
    ]
    assert result_of(done.stderr).group(2, 3) == ("succeeded", "0")


@pytest.mark.parametrize(
    ("args", "code"),
    [(("py/fail", "how=joberror"), 3), (("py/fail", "how=code"), 7), (("sh/echo", "code=5"), 5)],
    ids=["joberror", "returned-code", "script"],
)
def test_run_exits_with_the_jobs_own_exit_code(tmp_path, args, code):
    """A failing run's exit code is the job's: a JobError's code, a returned code, a script's."""
    done = runner(tmp_path, "run", *args)
    assert done.returncode == code, done.stderr
    assert result_of(done.stderr).group(2, 3) == ("failed", str(code))


def test_run_with_bad_parameters_exits_2_naming_each_one_and_records_nothing(tmp_path):
    """Bad parameters exit 2 before any run is created; the message names every bad one."""
    done = runner(tmp_path, "run", "py/echo", "rg=Bad_Name", "count=20", "size=huge")
    assert done.returncode == 2
    assert done.stdout == ""
    for name in ("rg", "count", "size"):
        assert re.search(rf"\b{name}:", done.stderr), done.stderr
    missing = runner(tmp_path, "run", "py/echo", "count=2")
    assert missing.returncode == 2
    assert "rg" in missing.stderr
    listed = runner(tmp_path, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_run_refuses_an_unknown_job_or_a_parameter_without_equals(tmp_path):
    """An unknown job and a parameter not written KEY=VALUE exit 2 with a message."""
    unknown = runner(tmp_path, "run", "py/nope")
    assert unknown.returncode == 2
    assert "py/nope" in unknown.stderr
    assert "runner jobs" in unknown.stderr
    bare = runner(tmp_path, "run", "py/echo", "rg")
    assert bare.returncode == 2
    assert "KEY=VALUE" in bare.stderr


def test_ctrl_c_during_run_cancels_and_records_the_run_then_exits_130(tmp_path):
    """SIGINT to `runner run` cancels the run, records why, and exits 130."""
    cmd = [sys.executable, "-m", "runner", "run", "py/sleep", "seconds=30"]
    cmd += ["--state-dir", str(tmp_path / "state"), "--jobs", str(TEST_JOBS)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        cwd=tmp_path,
        env=clean_env(),
    )
    with proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"start ")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    (run,) = json.loads(runner(tmp_path, "runs", "--json").stdout)
    assert run["state"] == "cancelled"
    assert run["reason"] == "interrupted from the terminal"
    logged = runner(tmp_path, "logs", run["id"])
    assert "cleaning up after cancel" in logged.stdout.splitlines()
    assert result_of(logged.stderr).group(2) == "cancelled"


# -- runner jobs ---------------------------------------------------------------------


def test_jobs_lists_every_job_path(tmp_path):
    """`runner jobs` prints one line per job, starting with its path."""
    done = runner(tmp_path, "jobs", state=False)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [f"/{p}" for p in JOB_PATHS]


def test_jobs_json_is_the_catalogue_as_json(tmp_path):
    """`runner jobs --json` prints valid JSON describing each job."""
    done = runner(tmp_path, "jobs", "--json", state=False)
    assert done.returncode == 0, done.stderr
    catalogue = json.loads(done.stdout)
    assert [j["path"] for j in catalogue] == [f"/{p}" for p in JOB_PATHS]
    echo = next(j for j in catalogue if j["path"] == "/py/echo")
    assert echo["kind"] == "python"
    assert set(echo["parameters"]["properties"]) == {"rg", "count", "size", "flag"}
    assert catalogue[-1]["kind"] == "script"


# -- runner runs ---------------------------------------------------------------------


def test_runs_lists_the_runs_just_made_newest_first_and_filters_by_state(tmp_path):
    """`runner runs` shows runs newest first; --state filters; --json is the same as JSON."""
    ids = []
    for args in (("py/echo", "rg=a"), ("py/fail",), ("sh/echo", "code=0")):
        done = runner(tmp_path, "run", *args)
        ids.append(result_of(done.stderr).group(1))
    ids.reverse()  # newest first

    listed = runner(tmp_path, "runs")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert [r[0] for r in rows] == ids
    assert [r[-1] for r in rows] == ["/sh/echo", "/py/fail", "/py/echo"]
    assert [r[3] for r in rows] == ["succeeded", "failed", "succeeded"]

    failed = runner(tmp_path, "runs", "--state", "failed")
    assert [line.split()[0] for line in failed.stdout.splitlines()] == [ids[1]]

    as_json = json.loads(runner(tmp_path, "runs", "--json").stdout)
    assert [r["id"] for r in as_json] == ids
    assert [r["state"] for r in as_json] == ["succeeded", "failed", "succeeded"]
    assert as_json[1]["exit_code"] == 3
    assert as_json[2]["params"]["rg"] == "a"

    only_echo = json.loads(runner(tmp_path, "runs", "--json", "--job", "py/echo").stdout)
    assert [r["id"] for r in only_echo] == [ids[2]]


def test_runs_on_an_empty_state_dir_says_nothing_has_run(tmp_path):
    """`runner runs` before any run exits 2 and says where it looked."""
    done = runner(tmp_path, "runs")
    assert done.returncode == 2
    assert "nothing has run here yet" in done.stderr
    assert str(tmp_path / "state") in done.stderr


# -- runner logs ---------------------------------------------------------------------


def test_logs_prints_a_finished_runs_output(tmp_path):
    """`runner logs ID` prints the run's output lines on stdout and its result on stderr."""
    done = runner(tmp_path, "run", "py/echo", "rg=x", "count=3")
    run_id = result_of(done.stderr).group(1)
    logs = runner(tmp_path, "logs", run_id)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == done.stdout
    assert result_of(logs.stderr).group(1, 2, 3) == (run_id, "succeeded", "0")

    missing = runner(tmp_path, "logs", "01AAAAAAAAAAAAAAAAAAAAAAAA")
    assert missing.returncode == 2
    assert "no run 01AAAAAAAAAAAAAAAAAAAAAAAA" in missing.stderr


def test_logs_follow_tracks_a_run_in_progress_on_a_server_until_it_ends(tmp_path, serve):
    """`runner logs ID --follow` prints a server's run as it goes and exits when it ends,
    with the run's own exit code (130: it was cancelled)."""
    srv = serve(state_dir=tmp_path / "state")
    with srv.client() as c:
        r = c.post("/py/sleep", params={"seconds": "30"}, headers={"Prefer": "respond-async"})
        run_id = r.json()["id"]
        cmd = [sys.executable, "-m", "runner", "logs", run_id, "--follow"]
        cmd += ["--state-dir", str(tmp_path / "state"), "--jobs", str(TEST_JOBS)]
        # Unbuffered: readline() reads no further than the line, communicate() the rest.
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            cwd=tmp_path,
            env=clean_env(),
        )
        with proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            # The run is still going, and the command is still following it.
            assert c.get(f"/_runs/{run_id}").json()["state"] == "running"
            assert proc.poll() is None
            assert c.post(f"/_runs/{run_id}/cancel").status_code == 200
            rest, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert first.startswith(b"start ")
    assert rest.decode().splitlines() == ["cleaning up after cancel"]
    assert result_of(err.decode()).group(1, 2) == (run_id, "cancelled")


# -- configuration -------------------------------------------------------------------


def test_settings_toml_then_env_then_flags_each_override_the_one_before(tmp_path):
    """load(): runner.toml beats defaults, RUNNER_* beats the file, flags beat both."""
    toml = tmp_path / "runner.toml"
    toml.write_text(
        "[server]\nport = 1111\nmax_running = 3\ndrain_timeout = 7\nstate_dir = 'st'\n"
        "builtin-jobs = false\n"
    )
    only_file = load(config=toml, environ={})
    assert only_file.server.port == 1111
    assert only_file.limits.max_running == 3
    assert only_file.limits.drain_timeout == 7
    assert only_file.server.builtin_jobs is False
    assert only_file.server.state_dir == tmp_path / "st"  # relative to the file
    assert only_file.limits.max_queued == Settings().limits.max_queued

    def figures(s: Settings) -> tuple[int, int, float]:
        return s.server.port, s.limits.max_running, s.limits.drain_timeout

    env = {"RUNNER_PORT": "2222", "RUNNER_MAX_RUNNING": "4", "HOME": "/x"}
    with_env = load(config=toml, environ=env)
    assert figures(with_env) == (2222, 4, 7)

    with_flags = load(config=toml, environ=env, overrides={"port": 3333, "host": None})
    assert figures(with_flags) == (3333, 4, 7)
    assert with_flags.server.host == Settings().server.host  # a flag not given: no override


def test_settings_config_file_can_come_from_runner_config(tmp_path):
    """RUNNER_CONFIG names the file when --config is not given; top-level keys work too."""
    toml = tmp_path / "elsewhere.toml"
    toml.write_text("max_queued = 9\n")
    assert load(environ={"RUNNER_CONFIG": str(toml)}).limits.max_queued == 9


def test_settings_unknown_key_in_runner_toml_is_an_error_naming_it(tmp_path):
    """A typo in runner.toml fails loudly, naming the key and the file."""
    toml = tmp_path / "runner.toml"
    toml.write_text("[server]\nport = 1\nmax_runing = 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'max_runing'") as info:
        load(config=toml, environ={})
    assert str(toml) in str(info.value)
    with pytest.raises(ConfigError, match="RUNNER_MAX_RUNING"):
        load(environ={"RUNNER_MAX_RUNING": "3"})
    with pytest.raises(ConfigError, match="max_running"):
        load(environ={"RUNNER_MAX_RUNNING": "many"})


def test_cli_reports_an_unknown_key_in_runner_toml_and_exits_2(tmp_path):
    """`runner jobs --config bad.toml` exits 2 with a message naming the unknown key."""
    toml = tmp_path / "bad.toml"
    toml.write_text("[server]\nmax_runing = 3\n")
    done = runner(tmp_path, "jobs", "--config", str(toml), state=False)
    assert done.returncode == 2
    assert "max_runing" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_state_dir_comes_from_toml_then_env_then_flag(tmp_path):
    """The store `runner runs` opens is the file's state_dir, unless env, unless the flag."""
    toml = tmp_path / "runner.toml"
    toml.write_text("state_dir = 'from-toml'\n")
    cmd = [sys.executable, "-m", "runner", "runs", "--config", str(toml)]

    def looked_in(*extra: str, **env: str) -> str:
        done = subprocess.run(
            [*cmd, *extra],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=clean_env(**env),
            timeout=30,
        )
        assert done.returncode == 2
        m = re.search(r"no run store at (\S+)", done.stderr)
        assert m, done.stderr
        return str(Path(m.group(1)).parent.name)

    assert looked_in() == "from-toml"
    assert looked_in(RUNNER_STATE_DIR=str(tmp_path / "from-env")) == "from-env"
    flag = ("--state-dir", str(tmp_path / "from-flag"))
    assert looked_in(*flag, RUNNER_STATE_DIR=str(tmp_path / "from-env")) == "from-flag"

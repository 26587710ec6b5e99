"""The wheel: built from the checkout, installed outside it, it serves the built-in jobs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _packages_on_disk() -> set[str]:
    found = {"runner.builtin_jobs"}
    for init in (ROOT / "runner").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_every_package_is_listed_for_the_wheel():
    """pyproject.toml lists its packages by hand (jobs/ is mapped in): none may be missing."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(listed["packages"]) == _packages_on_disk()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built offline and installed into a fresh venv outside the checkout; its
    dependencies come from the test's own environment (a path file), not from an index."""
    where = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    source = where / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in ("runner", "jobs"):
        shutil.copytree(ROOT / part, source / part, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(where / "dist")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next((where / "dist").glob("runner-*.whl"))
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # The dependencies: this environment's site-packages, after the venv's own (a path
    # file adds the folder; its .pth files, the checkout's editable finder among them,
    # are not run).
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "runner/builtin_jobs/vm/create.py" in names
    # The web page ships in the wheel: its HTML shell, script modules and style sheet.
    for name in ("index.html", "app.js", "form.js", "live.js", "history.js", "style.css"):
        assert f"runner/web/ui/static/{name}" in names, name
    return venv


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "PYTHON"))}
    return env | extra


def test_the_installed_wheel_serves_the_built_in_jobs_from_outside_the_checkout(
    installed, tmp_path
):
    """`runner jobs` from the installed wheel lists vm/create, read from the venv."""
    done = subprocess.run(
        [str(installed / "bin" / "runner"), "jobs", "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"path": "/vm/create"' in done.stdout
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "import runner, runner.catalogue as c; print(runner.__file__); print(c.builtin_folder())"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(installed) for p in where), where


def test_the_installed_wheel_creates_a_vm_on_the_sandbox(installed, tmp_path):
    """`runner run vm/create --sandbox` from the installed wheel creates and reports a VM."""
    done = subprocess.run(
        [str(installed / "bin" / "runner"), "run", "vm/create", "vmname=wheel-vm", "rg=wheel",
         "pw=Wheel-Passw0rd-2026", "--sandbox", "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created virtual machine wheel-vm" in done.stdout
    assert "Wheel-Passw0rd-2026" not in done.stdout + done.stderr

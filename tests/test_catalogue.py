"""Job discovery: naming rules, collisions, symlinks and hidden files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner import catalogue
from runner.catalogue import Catalogue, folders
from runner.errors import CatalogueError
from runner.settings import ServerSettings

PY_JOB = '"""A job."""\n\nasync def run(ctx) -> None:\n    ctx.print("hi")\n'


def _script(path: Path, body: str = "echo hi") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _py(path: Path, text: str = PY_JOB) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_paths_follow_folders_and_drop_extensions(tmp_path):
    """jobs/vm/create.py serves /vm/create; jobs/deploy/site.sh serves /deploy/site."""
    _py(tmp_path / "vm" / "create.py")
    _script(tmp_path / "deploy" / "site.sh")
    _script(tmp_path / "plain")
    (tmp_path / "README.md").write_text("not a job")
    (tmp_path / "data.txt").write_text("not executable, not a job")
    cat = Catalogue.discover((tmp_path,))
    assert [j.path for j in cat] == ["deploy/site", "plain", "vm/create"]
    assert cat.get("vm/create").kind == "python"
    assert cat.get("deploy/site").kind == "script"


def test_hidden_private_and_cache_files_are_skipped(tmp_path):
    """Dot files, _private helpers and __pycache__ are never jobs."""
    _script(tmp_path / ".secret.sh")
    _script(tmp_path / ".git" / "hook.sh")
    _py(tmp_path / "_helpers.py", "x = 1\n")
    _py(tmp_path / "__pycache__" / "x.py")
    _py(tmp_path / "ok.py")
    assert [j.path for j in Catalogue.discover((tmp_path,))] == ["ok"]


def test_two_files_claiming_one_path_stop_the_start(tmp_path):
    """site.py and site.sh in one folder, or one path in two folders, name both files."""
    one, two = tmp_path / "one", tmp_path / "two"
    _py(one / "site.py")
    _script(one / "site.sh")
    _script(two / "site.sh")
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((one, two))
    text = str(err.value)
    assert "/site is claimed by two files" in text
    assert str(one / "site.py") in text and str(one / "site.sh") in text
    assert str(two / "site.sh") in text


@pytest.mark.parametrize("name", ["Deploy.sh", "my job.sh", "-x.sh", "Caps/job.py", "a.b.py"])
def test_names_breaking_the_rule_stop_the_start(tmp_path, name):
    """Upper case, spaces, leading dashes and dotted module names are refused by name."""
    target = tmp_path / name
    if name.endswith(".py"):
        _py(target)
    else:
        _script(target)
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((tmp_path,))
    assert str(target) in str(err.value)


def test_symlinks_out_of_the_folder_stop_the_start(tmp_path):
    """A symlinked file or folder pointing outside the job folder is refused."""
    jobs, outside = tmp_path / "jobs", tmp_path / "outside"
    _script(outside / "evil.sh")
    jobs.mkdir()
    os.symlink(outside / "evil.sh", jobs / "evil.sh")
    os.symlink(outside, jobs / "more")
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((jobs,))
    assert "evil.sh: symlink leaves the job folder" in str(err.value)
    assert "more: symlink leaves the job folder" in str(err.value)


def test_symlink_inside_the_folder_is_served_as_its_target(tmp_path):
    """A symlink to a script in the same job folder is fine; the resolved file runs."""
    real = _script(tmp_path / "real.sh")
    os.symlink(real, tmp_path / "alias.sh")
    cat = Catalogue.discover((tmp_path,))
    assert cat.get("alias").file == real.resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("async def run(ctx):\n    pass\n", "add a module docstring"),
        ('"""D."""\ndef run(ctx):\n    pass\n', "async def run"),
        ('"""D."""\nasync def run(ctx, x):\n    pass\n', "needs a type annotation"),
        ('"""D."""\nasync def run(ctx, **kw: str):\n    pass\n', "cannot take *args"),
        ('"""D."""\nLOCK = "rg:{rg}"\nasync def run(ctx, name: str):\n    pass\n', "LOCK uses"),
        ('"""D."""\nraise RuntimeError("boom")\n', "import failed: RuntimeError: boom"),
        ('"""D."""\nTIMEOUT = -1\nasync def run(ctx):\n    pass\n', "TIMEOUT must be"),
    ],
)
def test_broken_python_jobs_are_reported_with_the_reason(tmp_path, text, message):
    """A job module that cannot be described stops the start with what to fix."""
    _py(tmp_path / "bad.py", text)
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((tmp_path,))
    assert message in str(err.value)
    assert str(tmp_path / "bad.py") in str(err.value)


def test_script_header_declares_description_timeout_lock_and_secrets(tmp_path):
    """A script's leading comments give its description and runner-* settings."""
    _script(
        tmp_path / "s.sh",
        "# Deploy the site.\n# runner-timeout: 12\n# runner-lock: site:{site}\n"
        "# runner-secret: token, key\necho hi",
    )
    job = Catalogue.discover((tmp_path,)).get("s")
    assert (job.description, job.timeout, job.lock) == ("Deploy the site.", 12.0, "site:{site}")
    assert job.secrets == {"token", "key"}


def test_missing_folder_is_an_error(tmp_path):
    """A --jobs folder that does not exist is named."""
    with pytest.raises(CatalogueError, match="job folder does not exist"):
        Catalogue.discover((tmp_path / "nope",))


def test_script_parameters_are_declared_one_header_line_each(tmp_path):
    """Name, required/secret, key=value (quoted when it has spaces), -- description; a
    runner-secret name joins them as a secret."""
    _script(
        tmp_path / "s.sh",
        "# Deploy.\n"
        "# runner-param: site required pattern='^[a-z]+ ?$' -- the site, -- dashes and all\n"
        '# runner-param: mode choices=a,b default=b description="how to go"\n'
        "# runner-secret: key\n"
        "# runner-lock: site:{site}\necho hi",
    )
    job = Catalogue.discover((tmp_path,)).get("s")
    props = job.describe()["parameters"]["properties"]
    assert props["site"] == {"type": "string", "pattern": "^[a-z]+ ?$",
                             "description": "the site, -- dashes and all"}  # fmt: skip
    assert props["mode"] == {"type": "string", "enum": ["a", "b"], "default": "b",
                             "description": "how to go"}  # fmt: skip
    assert props["key"] == {"type": "string", "writeOnly": True, "x-secret": True}
    assert job.describe()["parameters"]["required"] == ["site"]
    assert job.description == "Deploy."


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("rg mandatory", "unknown word 'mandatory'"),
        ("rg pattern=[a-", "pattern=[a- is no regular expression"),
        ("rg required default=x", "a required parameter has no default"),
        ("rg pattern=^[a-z]+$ default=X1", "the default 'X1' must match ^[a-z]+$"),
        ("rg choices=a,b default=c", "the default 'c' must be one of a, b"),
        ("Rg", "'Rg' is not a parameter name"),
        ("path", "path: this name is reserved"),
        ("rg colour=red", "unknown key colour="),
        ("", "give the parameter's name first"),
        ("rg\n# runner-param: rg", "rg is declared twice"),
    ],
)
def test_a_bad_parameter_declaration_stops_the_start_naming_file_and_line(tmp_path, line, says):
    """A declaration that cannot be honoured is found at start, not at a request."""
    _script(tmp_path / "s.sh", f"# Deploy.\n# runner-param: {line}\necho hi")
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((tmp_path,))
    line_no = 4 if "twice" in says else 3
    assert f"{tmp_path / 's.sh'}: line {line_no}: runner-param: " in str(err.value)
    assert says in str(err.value)


def test_a_script_declaring_parameters_locks_only_on_declared_ones(tmp_path):
    """runner-lock naming an undeclared parameter could never be filled: an error."""
    _script(tmp_path / "s.sh", "# runner-param: rg\n# runner-lock: vm:{vm}\necho hi")
    with pytest.raises(CatalogueError, match="runner-lock uses undeclared parameters: vm"):
        Catalogue.discover((tmp_path,))


def test_every_problem_in_a_folder_is_reported_at_once(tmp_path):
    """A dangling symlink, a symlink out, a dotted name and a bad name are each named, one
    per line, and the scan goes on past each: the operator fixes them in one go."""
    jobs = tmp_path / "jobs"
    _script(tmp_path / "outside.sh")
    jobs.mkdir()
    os.symlink(jobs / "missing.sh", jobs / "a-dangling.sh")
    os.symlink(jobs / "b-loop.sh", jobs / "b-loop.sh")
    os.symlink(tmp_path / "outside.sh", jobs / "c-out.sh")
    _py(jobs / "d.e.py")
    _script(jobs / "eBad.sh")
    _script(jobs / "f" / "Caps" / "Bad.sh")
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((jobs,))
    lines = str(err.value).splitlines()
    assert lines[0] == "cannot serve these jobs:"
    # A loop is a RuntimeError before Python 3.13, an OSError since.
    assert lines[2].startswith(f"  {jobs / 'b-loop.sh'}: broken symlink (")
    assert lines[1:2] + lines[3:] == [
        f"  {jobs / 'a-dangling.sh'}: broken symlink (FileNotFoundError)",
        f"  {jobs / 'c-out.sh'}: symlink leaves the job folder (to {tmp_path / 'outside.sh'})",
        f"  {jobs / 'd.e.py'}: job names may not contain dots",
        f"  {jobs / 'eBad.sh'}: 'eBad' breaks the naming rule "
        "(each part lowercase [a-z0-9][a-z0-9_-]*; bad: eBad)",
        f"  {jobs / 'f' / 'Caps' / 'Bad.sh'}: 'f/Caps/Bad' breaks the naming rule "
        "(each part lowercase [a-z0-9][a-z0-9_-]*; bad: Caps, Bad)",
    ]


def test_folders_after_a_skipped_or_refused_one_are_still_scanned(tmp_path):
    """A hidden folder, a symlinked folder (never descended into, even inside) and a folder
    leaving the job folder do not end the scan: jobs in later folders are served, and every
    outward link is named."""
    jobs, outside = tmp_path / "jobs", tmp_path / "outside"
    _script(outside / "evil.sh")
    _script(jobs / ".hidden" / "x.sh")
    _script(jobs / "real" / "inner.sh")
    os.symlink(jobs / "real", jobs / "alias")
    os.symlink(outside, jobs / "b-out")
    os.symlink(outside, jobs / "c-out")
    _script(jobs / "z" / "last.sh")
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((jobs,))
    assert f"{jobs / 'b-out'}: symlink leaves the job folder" in str(err.value)
    assert f"{jobs / 'c-out'}: symlink leaves the job folder" in str(err.value)
    (jobs / "b-out").unlink()
    (jobs / "c-out").unlink()
    assert [j.path for j in Catalogue.discover((jobs,))] == ["real/inner", "z/last"]


def test_every_folder_and_every_collision_is_checked(tmp_path):
    """A missing folder and a collision do not hide the problems after them."""
    one, two = tmp_path / "one", tmp_path / "two"
    _script(one / "a.sh")
    _script(one / "b.sh")
    _script(two / "a.sh")
    _script(two / "b.sh")
    _script(two / "Bad.sh")
    with pytest.raises(CatalogueError) as err:
        Catalogue.discover((tmp_path / "nope", one, two))
    text = str(err.value)
    assert f"{tmp_path / 'nope'}: job folder does not exist" in text
    assert f"/a is claimed by two files: {one / 'a.sh'} and {two / 'a.sh'}" in text
    assert f"/b is claimed by two files: {one / 'b.sh'} and {two / 'b.sh'}" in text
    assert f"{two / 'Bad.sh'}: 'Bad' breaks the naming rule" in text


def test_a_rescan_serves_the_new_jobs_in_place_of_the_old(tmp_path):
    """After a rescan the catalogue serves exactly the jobs found then."""
    _script(tmp_path / "old.sh")
    cat = Catalogue.discover((tmp_path,))
    (tmp_path / "old.sh").unlink()
    _script(tmp_path / "new.sh")
    cat.replace(Catalogue.discover((tmp_path,)))
    assert [j.path for j in cat] == ["new"]
    assert cat.get("old") is None and len(cat) == 1


def test_the_built_in_jobs_come_first_and_only_when_asked_for(tmp_path):
    """builtin_jobs = true puts the shipped jobs/ folder before the operator's folders."""
    _script(tmp_path / "mine.sh")
    with_builtin = folders(ServerSettings(jobs=(tmp_path,), builtin_jobs=True))
    assert len(with_builtin) == 2 and with_builtin[1] == tmp_path
    shipped = [j.path for j in Catalogue.discover(with_builtin[:1])]
    assert {"vm/create", "group/create", "identity/whoami"} <= set(shipped)
    assert folders(ServerSettings(jobs=(tmp_path,), builtin_jobs=False)) == (tmp_path,)


def test_an_install_without_the_built_in_jobs_says_how_to_go_on(monkeypatch):
    """A wheel missing runner.builtin_jobs stops the start with what to do, not a traceback."""
    monkeypatch.setattr(catalogue, "BUILTIN", "runner.no_such_builtin_jobs")
    with pytest.raises(CatalogueError, match="reinstall it, or set builtin_jobs = false"):
        catalogue.builtin_folder()

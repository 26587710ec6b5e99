"""Principals: the caller a run records, and which jobs a pattern lets it run."""

from __future__ import annotations

import pytest

from runner.auth.principal import ANONYMOUS, Principal, job_matches
from runner.errors import Forbidden


@pytest.mark.parametrize(
    ("pattern", "job", "expected"),
    [
        ("deploy/*", "deploy/site", True),
        ("deploy/*", "deploy/a/b", False),
        ("deploy/**", "deploy/a/b", True),
        ("deploy/**", "deploy", False),
        ("deploy/**/site", "deploy/site", True),
        ("deploy/**/site", "deploy/eu/west/site", True),
        ("deploy/**/site", "deploy/eu/other", False),
        ("/deploy/*/", "/deploy/site/", True),
        ("deploy/*", "/deploy/site", True),
        ("deploy", "deploy/X", False),
        ("deploy/X", "deploy", False),
        ("**", "vm/create", True),
        ("vm/create", "vm/create", True),
        ("vm/create", "vm/created", False),
        ("vm/cre?te", "vm/create", True),
        ("*", "vm/create", False),
        ("deploy/*", "Deploy/site", False),
        ("deploy/*", "deploy/..", False),
        ("**", "deploy/../vm", False),
    ],
)
def test_patterns_match_segment_by_segment(pattern, job, expected):
    """``*`` stays inside one segment, ``**`` spans segments, odd paths never match."""
    assert job_matches(pattern, job) is expected


def test_callers_name_kind_and_source():
    """Each kind of principal is recorded in its own form."""
    assert Principal.user("alice").caller == "user:alice"
    assert Principal.token("ci-deploy", ("deploy/*",)).caller == "token:ci-deploy"
    assert Principal.webhook("github", "72d3162e", ("ci/deploy",)).caller == (
        "webhook:github/72d3162e"
    )
    assert ANONYMOUS.caller == "anonymous"


def test_unrestricted_principals_leave_odd_paths_to_the_router():
    """A user may run anything; a path that is no job is answered 404 later, not 403."""
    assert Principal.user("alice").may_run("Not/A/Job")
    assert not Principal.token("ci", ("**", "x")).may_run("Not/A/Job")


def test_a_principal_out_of_its_patterns_is_refused_saying_what_it_may_run():
    """The refusal names the caller, the job and the patterns it may run, as fields too."""
    token = Principal.token("ci", ("deploy/*", "vm/create"))
    token.ensure_may_run("deploy/site")
    with pytest.raises(Forbidden) as e:
        token.ensure_may_run("vm/delete")
    assert e.value.detail == "token:ci may not run vm/delete; it may run: deploy/*, vm/create"
    assert e.value.fields == {"caller": "token:ci", "job": "vm/delete"}


def test_a_webhook_runs_only_its_own_job():
    """A verified delivery is recorded with its source and id, and may start its job only."""
    hook = Principal.webhook("github", "72d3162e", ("ci/deploy",))
    assert hook.may_run("ci/deploy") and not hook.may_run("ci/other")
    assert Principal.webhook("slack", None, ("ci/deploy",)).caller == "webhook:slack"


def test_the_local_cli_runs_anything_as_its_account():
    """``runner run`` on the host runs any job, recorded as the local account."""
    local = Principal.cli("alice")
    assert local.caller == "cli:alice" and local.kind == "cli"
    local.ensure_may_run("vm/delete")

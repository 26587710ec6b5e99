"""Principals: the caller a run records, and which jobs a pattern lets it run."""

from __future__ import annotations

import pytest

from runner.auth.principal import ANONYMOUS, Principal, job_matches


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

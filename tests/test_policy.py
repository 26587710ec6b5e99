"""runner.toml's [jobs."…"] entries: which applies to which job, and no silent shadowing."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.policy import JobPolicy, Policies, policies_from_toml


def test_patterns_match_segment_by_segment_like_token_patterns():
    """deploy/* is what lies directly under deploy; ** reaches deeper; * never crosses /."""
    broad = JobPolicy("deploy/*", allow=("user:bob",))
    deep = JobPolicy("deploy/**", allow=("user:bob",))
    assert broad.matches("deploy/site") and not broad.matches("deploy/prod/site")
    assert deep.matches("deploy/prod/site")
    assert not broad.matches("deploy/../vm/create")


def test_a_narrow_entry_does_not_drop_what_a_broad_one_says():
    """verify on deploy/** and allow on deploy/prod/site: the job gets both (the reported
    bug: an earlier broad entry made a later verify never apply, or the other way round)."""
    policies = Policies(
        (
            JobPolicy("deploy/**", allow=("user:alice",)),
            JobPolicy("deploy/prod/site", verify="github", secrets=("env:GH",)),
        ),
        ["deploy/prod/site", "deploy/dev"],
    )
    site = policies.for_job("deploy/prod/site")
    assert site is not None and site.verify == "github" and site.allow == ("user:alice",)
    dev = policies.for_job("deploy/dev")
    assert dev is not None and dev.verify is None and dev.allow == ("user:alice",)


def test_the_most_specific_entry_wins_what_it_sets():
    """Both set allow: the more specific one decides; order in the file does not matter."""
    entries = (JobPolicy("py/echo", allow=("user:bob",)), JobPolicy("py/*", allow=("user:al",)))
    for order in (entries, entries[::-1]):
        found = Policies(order, ["py/echo"]).for_job("py/echo")
        assert found is not None and found.allow == ("user:bob",)


def test_two_equally_specific_entries_that_disagree_stop_the_start():
    """py/e* and py/*o both match py/echo with one wildcard each: ambiguous, an error."""
    with pytest.raises(ConfigError, match="'py/e\\*', 'py/\\*o' are as specific"):
        Policies(
            (JobPolicy("py/e*", allow=("user:a",)), JobPolicy("py/*o", allow=("user:b",))),
            ["py/echo"],
        )


def test_a_pattern_with_other_characters_is_refused(tmp_path: Path):
    """A pattern that can name no job (spaces, capitals) is a configuration error."""
    with pytest.raises(ConfigError, match="job pattern"):
        policies_from_toml({"Deploy Site": {"allow": ["user:a"]}}, tmp_path / "runner.toml")

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


def _toml(tmp_path: Path, **entries: dict) -> tuple[JobPolicy, ...]:
    return policies_from_toml({k.replace("__", "/"): v for k, v in entries.items()},
                              tmp_path / "runner.toml")  # fmt: skip


HOOK = {"verify": "github", "secret": "env:GH"}


def test_delivery_rules_cascade_like_verify_and_allow(tmp_path: Path):
    """events on deploy/** and params on deploy/site: the site gets both, the rest events."""
    policies = Policies(
        _toml(
            tmp_path,
            **{"deploy/**": HOOK | {"events": ["push"]},
               "deploy/site": {"params": {"ref": "body.ref"}}},
        ),
        ["deploy/site", "deploy/api"],
    )  # fmt: skip
    site, api = policies.for_job("deploy/site"), policies.for_job("deploy/api")
    assert site is not None and site.events == ("push",)
    assert [n for n, _ in site.params] == ["ref"] and site.verify == "github"
    assert api is not None and api.events == ("push",) and api.params == ()


def test_delivery_rules_without_verify_stop_the_start(tmp_path: Path):
    """params, events and when choose and read verified deliveries: alone, they mean a
    missing verify, which the start says."""
    with pytest.raises(ConfigError, match=r"/ci/deploy: .* sets params and events .* verify"):
        Policies(
            _toml(tmp_path, ci__deploy={"events": ["push"], "params": {"ref": "body.ref"}}),
            ["ci/deploy"],
        )


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"params": {"ref": "body.[ref"}}, "params.ref: 'body.[ref' is not a JMESPath"),
        ({"params": {"ref": "body.x-y"}}, "params.ref: 'body.x-y' is not a JMESPath"),
        ({"params": {"ref": "nofn(body)"}}, "Unknown function: nofn()"),
        ({"params": {"Ref": "body.ref"}}, "params: 'Ref' is not a parameter name"),
        ({"params": ["body.ref"]}, "params is a table"),
        ({"events": []}, "events is a list of event names"),
        ({"events": [1]}, "events holds event names"),
        ({"when": {"body.ref": {"a": 1}}}, "must be a string, number or boolean"),
        ({"when": {"starts_with(body.ref)": True}}, "is not a JMESPath expression"),
    ],
)
def test_a_bad_delivery_rule_stops_the_start_naming_the_entry(tmp_path: Path, entry, says):
    """A typo in an expression is found when runner.toml is read, not at a delivery."""
    with pytest.raises(ConfigError) as caught:
        _toml(tmp_path, ci__deploy=HOOK | entry)
    assert '[jobs."ci/deploy"]' in str(caught.value)
    assert says in str(caught.value)

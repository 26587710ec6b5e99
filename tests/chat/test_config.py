"""The README's chat and notification configuration, as written there, is what loads."""

from __future__ import annotations

import re

import pytest

from runner.errors import ConfigError
from runner.settings import load
from tests.conftest import ROOT


def _toml_blocks(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"### {section}\n")
    end = readme.index("\n### ", start + 1)
    return re.findall(r"```toml\n(.*?)```", readme[start:end], re.S)


@pytest.mark.parametrize("section", ["Chatops: Slack and Teams", "Notifications"])
def test_the_readme_examples_load(section, tmp_path):
    for n, block in enumerate(_toml_blocks(section)):
        config = tmp_path / f"runner{n}.toml"
        config.write_text(re.sub(r"(?m)^(\s+)", "", block))
        settings = load(config=config, environ={})
        if "[chat.slack]" in block:
            chat = settings.chat
            assert chat.slack_signing_secret == "env:SLACK_SIGNING_SECRET"
            assert chat.slack_allow == ("T0123ABCD/*",) and chat.slack_progress == 60
            assert settings.server.public_url == "https://runner.example.com"
            (policy,) = settings.security.policies
            assert policy.allow == ("slack:T0123ABCD/U04ALICE",)
        if "notify_secret" in block:
            assert settings.notify.notify == ("https://hooks.example.com/runner",)
            (policy,) = settings.security.policies
            assert policy.notify == ("env:TEAMS_DEPLOYS_URL",)


def test_chat_tables_are_checked(tmp_path):
    config = tmp_path / "runner.toml"
    config.write_text('[chat.discord]\ntoken = "env:X"\n')
    with pytest.raises(ConfigError, match=r"\[chat.discord\]: chat platforms are slack and teams"):
        load(config=config, environ={})
    config.write_text('[chat.slack]\nsigning_secret = "8f742231b10e8888abcd99yyyzzz85a5"\n')
    with pytest.raises(ConfigError, match="must be a secret source") as err:
        load(config=config, environ={})
    assert "8f742231" not in str(err.value)

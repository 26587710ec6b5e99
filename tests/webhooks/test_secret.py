"""Secrets: read from env: or file:, never shown."""

from __future__ import annotations

import copy
import logging
import pickle
import re
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.webhooks import Secret, load_secret

VALUE = "s3cr3t-Val-9f8e"


def test_env_secret_is_read():
    """env:NAME reads the variable from the environment given."""
    secret = load_secret("env:HOOK", {"HOOK": VALUE})
    assert secret.reveal() == VALUE.encode()
    assert secret.source == "env:HOOK"


def test_missing_env_variable_is_a_clear_error():
    """An unset variable is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="environment variable HOOK is not set"):
        load_secret("env:HOOK", {})


def test_empty_env_variable_is_refused():
    """An empty secret would let anyone sign: refused."""
    with pytest.raises(ConfigError, match="env:HOOK is empty"):
        load_secret("env:HOOK", {"HOOK": ""})


def test_file_secret_loses_one_trailing_newline(tmp_path):
    """file:PATH reads the file, minus the one newline an editor or echo adds."""
    path = tmp_path / "hook"
    path.write_bytes(VALUE.encode() + b"\n\n")
    path.chmod(0o600)
    assert load_secret(f"file:{path}", {}).reveal() == VALUE.encode() + b"\n"
    path.write_bytes(VALUE.encode() + b"\r\n")
    assert load_secret(f"file:{path}", {}).reveal() == VALUE.encode()


def test_relative_file_is_taken_from_the_config_folder(tmp_path):
    """A relative path is resolved against base_dir (where runner.toml lives)."""
    (tmp_path / "hook").write_text(VALUE)
    (tmp_path / "hook").chmod(0o600)
    assert load_secret("file:hook", {}, base_dir=tmp_path).reveal() == VALUE.encode()


def test_missing_file_is_a_clear_error(tmp_path):
    """A file that does not exist is a ConfigError naming the path."""
    with pytest.raises(ConfigError, match=re.escape(f"secret file:{tmp_path}/nope: no such file")):
        load_secret(f"file:{tmp_path / 'nope'}", {})


def test_directory_is_refused(tmp_path):
    """A directory is not a secret file."""
    with pytest.raises(ConfigError, match="not a regular file"):
        load_secret(f"file:{tmp_path}", {})


def test_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    """A file this user cannot read is a ConfigError saying so (simulated: tests may run
    as root, who reads anything)."""
    path = tmp_path / "hook"
    path.write_text(VALUE)

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConfigError, match="not readable"):
        load_secret(f"file:{path}", {})


def test_world_readable_file_is_used_with_a_warning(tmp_path, caplog):
    """A secret file every user can read still works, with a warning that has no value."""
    path = tmp_path / "hook"
    path.write_text(VALUE)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="runner.secrets"):
        assert load_secret(f"file:{path}", {}).reveal() == VALUE.encode()
    assert "readable by every user" in caplog.text
    assert f"secret file:{path}: {path} is readable" in caplog.text
    assert VALUE not in caplog.text


def test_private_file_is_used_without_a_warning(tmp_path, caplog):
    """A 0600 or 0640 secret file raises no warning."""
    path = tmp_path / "hook"
    path.write_text(VALUE)
    for mode in (0o600, 0o640):
        path.chmod(mode)
        with caplog.at_level(logging.WARNING, logger="runner.secrets"):
            assert load_secret(f"file:{path}", {}).reveal() == VALUE.encode()
    assert caplog.text == ""


def test_relative_file_without_a_config_folder_is_taken_from_the_working_folder(
    tmp_path, monkeypatch
):
    """With no runner.toml folder given, a relative path is read from where runner runs."""
    (tmp_path / "hook").write_text(VALUE)
    (tmp_path / "hook").chmod(0o600)
    monkeypatch.chdir(tmp_path)
    assert load_secret("file:hook", {}).reveal() == VALUE.encode()


def test_file_path_may_contain_a_colon(tmp_path):
    """Only the first colon separates the kind from the path."""
    path = tmp_path / "a:b"
    path.write_text(VALUE)
    path.chmod(0o600)
    secret = load_secret(f"file:{path}", {})
    assert secret.reveal() == VALUE.encode()
    assert str(secret) == f"<secret from file:{path}>"


def test_file_up_to_64_kib_is_read(tmp_path):
    """A secret file of 64 KiB is read; one byte more is refused as not a secret."""
    path = tmp_path / "hook"
    path.write_bytes(b"k" * 65536)
    path.chmod(0o600)
    assert len(load_secret(f"file:{path}", {}).reveal()) == 65536
    path.write_bytes(b"k" * 65537)
    with pytest.raises(
        ConfigError, match=rf"secret file:{re.escape(str(path))}: .* larger than 65536 bytes"
    ):
        load_secret(f"file:{path}", {})


@pytest.mark.parametrize("spec", ["vault:x", "env:", "file:", "ENV:X"])
def test_other_forms_are_refused(spec):
    """Only env:NAME and file:PATH are secret sources."""
    with pytest.raises(ConfigError, match="'env:NAME' or 'file:PATH'"):
        load_secret(spec, {"X": "v"})


@pytest.mark.parametrize("spec", [VALUE, "s3cr3t:with-colon"])
def test_literal_secret_is_refused_without_echoing_it(spec):
    """A secret pasted into the config is refused, and the message does not repeat it."""
    with pytest.raises(ConfigError, match="not as a literal value") as e:
        load_secret(spec, {})
    assert spec not in str(e.value)


def test_repr_and_str_hide_the_value():
    """repr, str and f-strings show where the secret came from, never its value."""
    secret = Secret(VALUE, source="env:HOOK")
    shown = [repr(secret), str(secret), f"{secret}", repr([secret]), repr({"s": secret})]
    assert all(VALUE not in text and "env:HOOK" in text for text in shown)
    assert str(Secret(VALUE)) == "<secret from inline>"


def test_settings_holding_a_secret_can_still_be_copied():
    """dataclasses.asdict and deepcopy of settings keep the same hidden Secret."""
    secret = Secret(VALUE)
    assert copy.deepcopy({"s": secret})["s"] is secret


def test_secret_cannot_be_pickled():
    """Pickling would copy the value somewhere durable, so it is refused."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE))

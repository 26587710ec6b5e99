"""Settings: one frozen object built once at start-up and passed down, in sections.

Sources, each overriding the one before: defaults < ``runner.toml`` < ``RUNNER_*``
environment variables < command-line flags. Keys are flat in every source (``port``,
``RUNNER_MAX_RUNNING``, ``--state-dir``); inside, each key belongs to one section
(:mod:`runner.settings.sections`) and each section goes to the part that needs it:
``server`` to the listener, ``limits`` to admission and the executor, ``azure`` to the
Azure extension, ``security`` to the HTTP guards, ``sandbox`` to ``--sandbox``, ``store``
to the run store and the replicas.
Unknown keys are errors, not silently ignored, so a typo in runner.toml is found on the
first start rather than in production.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter

from runner.errors import ConfigError
from runner.policy import policies_from_toml
from runner.settings.sections import (
    SECTIONS,
    AzureSettings,
    ChatSettings,
    LimitSettings,
    NotifySettings,
    SandboxSettings,
    SecuritySettings,
    ServerSettings,
    StoreSettings,
    loopback_address,
    names_a_secret,
    redacted,
)


class Settings(BaseModel):
    """Every knob of the runner, by section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: ServerSettings = ServerSettings()
    limits: LimitSettings = LimitSettings()
    azure: AzureSettings = AzureSettings()
    security: SecuritySettings = SecuritySettings()
    sandbox: SandboxSettings = SandboxSettings()
    store: StoreSettings = StoreSettings()
    notify: NotifySettings = NotifySettings()
    chat: ChatSettings = ChatSettings()

    @property
    def db_path(self) -> Path:
        """The SQLite file (``store = "sqlite:PATH"``, else ``state_dir/runner.db``)."""
        if self.store.url.startswith("sqlite:"):
            return Path(self.store.url.removeprefix("sqlite:")).expanduser()
        return self.server.state_dir / "runner.db"

    @property
    def tokens_path(self) -> Path:
        return self.security.token_store or self.server.state_dir / "tokens.json"


def _keys() -> dict[str, tuple[str, str]]:
    """Flat key → (section, field): a field's alias where it has one, else its name."""
    out: dict[str, tuple[str, str]] = {}
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            if not info.exclude:
                out[info.alias or name] = (section, name)
    return out


KEYS = _keys()
# RUNNER_* variables that are not settings: the client's (``runner call``, ``--server``).
CLIENT_VARIABLES = frozenset(
    ("RUNNER_URL", "RUNNER_TOKEN", "RUNNER_CACERT", "RUNNER_USER", "RUNNER_PASSWORD")
)
# Relative paths in runner.toml are relative to the file, not to wherever we started.
_PATHS = ("state_dir", "tls_cert", "tls_key", "arm_ca", "htpasswd", "token_store")


@functools.cache
def _adapter(key: str) -> TypeAdapter[Any]:
    section, name = KEYS[key]
    info = SECTIONS[section].model_fields[name]
    return TypeAdapter(info.rebuild_annotation())


def coerce(key: str, value: Any, source: str) -> Any:
    """One raw value (TOML, env string, flag) as its field's type, or why not in words."""
    if key not in KEYS:
        raise ConfigError(f"{source}: unknown setting {key!r}; known: {', '.join(KEYS)}")
    try:
        return _adapter(key).validate_python(value)
    except pydantic.ValidationError as exc:
        why = "; ".join(str(e["msg"]) for e in exc.errors())
        section, name = KEYS[key]
        # A secret's source refused is most often the secret pasted in: never echoed; a
        # store URL is shown without its password.
        shown = redacted(str(value)) if key == "store" else value
        got = "" if names_a_secret(SECTIONS[section].model_fields[name]) else f" (got {shown!r})"
        raise ConfigError(f"{source}: {key}: {why}{got}") from None


def from_values(values: Mapping[str, Any], *, source: str = "settings") -> Settings:
    """Settings from flat keys (values already coerced, or raw: both are checked)."""
    groups: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in values.items():
        if key == "policies":
            groups["security"]["policies"] = value
            continue
        coerced = coerce(key, value, source)
        section, name = KEYS[key]
        groups[section][name] = coerced
    try:
        return Settings(**{s: SECTIONS[s](**fields) for s, fields in groups.items()})
    except pydantic.ValidationError as exc:
        why = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"{source}: {why}") from None


def from_toml(path: Path) -> dict[str, Any]:
    """Read runner.toml's ``[server]`` table (or top-level keys) into flat values."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    table = data.get("server", {k: v for k, v in data.items() if not isinstance(v, dict)})
    out: dict[str, Any] = {}
    if isinstance(data.get("jobs"), dict):
        out["policies"] = policies_from_toml(data["jobs"], path)
    table = {**table, **_chat_keys(data.get("chat"), path)}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown setting {raw_key!r}; known: {', '.join(KEYS)}")
        out[key] = coerce(key, value, str(path))
    for key in _PATHS:
        if isinstance(out.get(key), Path) and not out[key].is_absolute():
            out[key] = path.parent / out[key]
    if "jobs" in out:
        out["jobs"] = tuple(p if p.is_absolute() else path.parent / p for p in out["jobs"])
    return out


def _chat_keys(chat: Any, path: Path) -> dict[str, Any]:
    """``[chat.slack] signing_secret`` is the flat key ``slack_signing_secret``."""
    if chat is None:
        return {}
    if not isinstance(chat, dict) or not all(isinstance(v, dict) for v in chat.values()):
        raise ConfigError(f"{path}: [chat] holds tables: [chat.slack], [chat.teams]")
    out = {}
    for platform, keys in chat.items():
        if platform not in ("slack", "teams"):
            raise ConfigError(f"{path}: [chat.{platform}]: chat platforms are slack and teams")
        for key, value in keys.items():
            out[f"{platform}_{key}"] = value
    return out


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Flat values from ``RUNNER_<KEY>`` variables; unknown RUNNER_ names are errors."""
    out: dict[str, Any] = {}
    for var, value in environ.items():
        if not var.startswith("RUNNER_") or var == "RUNNER_CONFIG" or var in CLIENT_VARIABLES:
            continue
        key = var[len("RUNNER_") :].lower()
        if key not in KEYS:
            raise ConfigError(f"environment: unknown variable {var}")
        out[key] = coerce(key, value, f"environment variable {var}")
    return out


def load(
    *,
    config: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings: defaults < runner.toml < RUNNER_* env < ``overrides`` (flags).

    Without ``config``, ``RUNNER_CONFIG`` names the file, else ``./runner.toml`` if present.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config is None and environ.get("RUNNER_CONFIG"):
        config = Path(environ["RUNNER_CONFIG"])
    if config is None and Path("runner.toml").is_file():
        config = Path("runner.toml")
    if config is not None:
        values.update(from_toml(config))
    values.update(from_env(environ))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = coerce(key, value, f"flag --{key.replace('_', '-')}")
    return from_values(values)


__all__ = [
    "CLIENT_VARIABLES",
    "KEYS",
    "AzureSettings",
    "ChatSettings",
    "LimitSettings",
    "NotifySettings",
    "SandboxSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "from_values",
    "load",
    "loopback_address",
]

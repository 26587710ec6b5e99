"""Settings: one frozen object built once at start-up and passed down.

Sources, each overriding the one before: defaults < ``runner.toml`` < ``RUNNER_*``
environment variables < command-line flags. Unknown keys are errors, not silently ignored,
so a typo in runner.toml is found on the first start rather than in production.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.policy import JobPolicy, policies_from_toml

# The built-in jobs shipped with the project (jobs/ beside the runner package).
BUILTIN_JOBS = Path(__file__).resolve().parent.parent / "jobs"


@dataclass(frozen=True)
class Settings:
    """Every knob of the runner. Field docs double as the reference in the README."""

    host: str = "127.0.0.1"
    port: int = 8443
    # Job folders served in addition to the built-in ones.
    jobs: tuple[Path, ...] = ()
    builtin_jobs: bool = True
    state_dir: Path = Path(".runner")
    tls: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Concurrency: runs executing at once, and runs waiting for a slot or a lock.
    max_running: int = 16
    max_queued: int = 256
    # Timeouts in seconds: a job's default when it declares none, and the server ceiling.
    default_timeout: float = 3600.0
    max_timeout: float = 6 * 3600.0
    # Request limits.
    max_body_bytes: int = 1024 * 1024
    max_script_body_bytes: int = 64 * 1024
    max_params: int = 64
    max_header_bytes: int = 32 * 1024
    max_param_bytes: int = 8192
    # Shutdown: how long running runs may finish after SIGTERM before they are cancelled.
    drain_timeout: float = 30.0
    # Script jobs: time between SIGTERM and SIGKILL of the process group.
    kill_grace: float = 5.0
    retention_days: float = 30.0
    # "auto": JSON lines when stderr is not a terminal, readable text when it is.
    log_format: str = "auto"
    log_level: str = "info"
    # SSE heartbeat comment interval (seconds).
    heartbeat: float = 15.0
    # Event loop: "auto" (uvloop when installed) or "asyncio".
    loop: str = "auto"
    # Azure. identity: "managed" (IMDS, App Service/Container Apps, Arc — azure-identity
    # picks by environment), "workload" (AKS federated token) or "default" (a laptop).
    identity: str = "managed"
    # A user-assigned managed identity (or the workload identity's app) by client id.
    client_id: str | None = None
    # Without these, they come from the instance metadata of the Azure VM we run on.
    subscription_id: str | None = None
    location: str | None = None
    arm_endpoint: str = "https://management.azure.com"
    arm_audience: str = "https://management.azure.com"
    # A CA bundle to trust for ARM and identity HTTPS (the sandbox's CA); None: the system's.
    arm_ca: Path | None = None
    imds_endpoint: str = "http://169.254.169.254"
    # Seconds between polls of a long-running operation, unless ARM sends Retry-After.
    arm_polling_interval: float = 5.0
    arm_retry_total: int = 10
    # Retries of token requests. azure-identity's own default backs off for 24-75 s on an
    # IMDS 5xx/410; a few quick ones keep "no identity here" an answer within seconds.
    identity_retry_total: int = 3
    # Bring the emulated Azure up in this process and point identity and ARM at it.
    sandbox: bool = False
    # Security. Users (an htpasswd file, bcrypt) and API tokens (a store made by
    # `runner token create`; default state_dir/tokens.json, used when it exists).
    htpasswd: Path | None = None
    token_store: Path | None = None
    # Listening beyond loopback with no authentication is refused unless this is set.
    insecure_no_auth: bool = False
    # Requests per second per principal (token bucket; 0 = off) and the burst allowed.
    rate_limit: float = 10.0
    rate_burst: int = 40
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDRs).
    trusted_proxies: tuple[str, ...] = ()
    # Origins allowed to call the API from a browser; none by default (CORS off).
    cors_origins: tuple[str, ...] = ()
    # Seconds a client may take to send its request body.
    body_timeout: float = 30.0
    # Per-job webhook verification and access (runner.toml [jobs."path"] tables).
    policies: tuple[JobPolicy, ...] = ()
    # Seconds a sandbox network resource takes to provision (a VM: five times as long);
    # 0 = at once. Makes a demo's streamed progress look like Azure's.
    sandbox_latency: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not a TCP port")
        for name in ("max_running", "max_params", "max_param_bytes", "max_body_bytes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.max_queued < 0:
            problems.append("max_queued must be 0 or more")
        for name in ("default_timeout", "max_timeout", "drain_timeout", "kill_grace"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be a positive number of seconds")
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls_cert and tls_key go together: give both or neither")
        if self.identity not in ("managed", "workload", "default"):
            problems.append("identity must be managed, workload or default")
        if self.rate_limit < 0 or self.rate_burst < 1:
            problems.append("rate_limit must be 0 or more and rate_burst at least 1")
        if self.arm_polling_interval < 0 or self.arm_retry_total < 0:
            problems.append("arm_polling_interval and arm_retry_total must be 0 or more")
        if self.loop not in ("auto", "asyncio", "uvloop"):
            problems.append("loop must be auto, asyncio or uvloop")
        if self.log_format not in ("auto", "json", "text"):
            problems.append("log_format must be auto, json or text")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def job_dirs(self) -> tuple[Path, ...]:
        """Every folder jobs are discovered in, built-in first."""
        return ((BUILTIN_JOBS,) if self.builtin_jobs else ()) + self.jobs

    @property
    def db_path(self) -> Path:
        return self.state_dir / "runner.db"

    @property
    def tokens_path(self) -> Path:
        return self.token_store or self.state_dir / "tokens.json"


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a raw value (TOML or env string) into the field's type, or explain why not."""
    kind = _FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError("expected text")
            return value
        if kind == "str | None":
            return None if value in (None, "") else str(value)
        if kind == "Path":
            return Path(str(value)).expanduser()
        if kind == "Path | None":
            return None if value in (None, "") else Path(str(value)).expanduser()
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise ValueError("expected a list")
            return tuple(str(v) for v in value)
        if kind == "tuple[Path, ...]":
            if isinstance(value, str):
                value = [v for v in value.split(os.pathsep) if v]
            if not isinstance(value, list | tuple):
                raise ValueError("expected a list of folders")
            return tuple(Path(str(v)).expanduser() for v in value)
    except ValueError as exc:
        raise ConfigError(f"{source}: {name}: {exc} (got {value!r})") from None
    raise ConfigError(f"{source}: {name}: unsupported setting type {kind}")  # pragma: no cover


def from_toml(path: Path) -> dict[str, Any]:
    """Read runner.toml's ``[server]`` table (or top-level keys) into field values."""
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
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in _FIELDS or name == "policies":
            known = ", ".join(f for f in _FIELDS if f != "policies")
            raise ConfigError(f"{path}: unknown setting {key!r}; known: {known}")
        out[name] = _coerce(name, value, str(path))
    # Relative folders in the file are relative to the file, not to wherever we started.
    for name in ("state_dir", "tls_cert", "tls_key", "arm_ca", "htpasswd", "token_store"):
        if isinstance(out.get(name), Path) and not out[name].is_absolute():
            out[name] = path.parent / out[name]
    if "jobs" in out:
        out["jobs"] = tuple(p if p.is_absolute() else path.parent / p for p in out["jobs"])
    return out


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Field values from ``RUNNER_<FIELD>`` variables; unknown RUNNER_ names are errors."""
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith("RUNNER_") or key == "RUNNER_CONFIG":
            continue
        name = key[len("RUNNER_") :].lower()
        if name not in _FIELDS or name == "policies":
            raise ConfigError(f"environment: unknown variable {key}")
        out[name] = _coerce(name, value, f"environment variable {key}")
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
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, f"flag --{name.replace('_', '-')}")
    return dataclasses.replace(Settings(), **values) if values else Settings()


__all__ = ["BUILTIN_JOBS", "Settings", "load"]

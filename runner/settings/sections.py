"""The sections of the settings, each handed to the part of the runner that needs it.

Each field is a key of ``runner.toml`` (in its ``[server]`` table), a ``RUNNER_<KEY>``
environment variable and, for some, a flag: the key is the field's name, or its alias
where the section's own name would repeat (``sandbox`` → ``SandboxSettings.enabled``).
A field's description is its documentation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from runner.policy import JobPolicy


def _not_bool(value: Any) -> Any:
    # pydantic takes true as 1; a number that was written as true is a mistake.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")
    return value


def _items(sep: str) -> BeforeValidator:
    """Lists also given as one string (an environment variable): split on ``sep``."""

    def split(value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(sep) if v.strip()]
        return value

    return BeforeValidator(split)


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


def _expand(value: Any) -> Any:
    if isinstance(value, str | Path) and str(value):
        return Path(str(value)).expanduser()
    return value


def _log_level(value: str) -> str:
    from runner.logs import parse_level  # ground layer; imported here to keep one parser

    parse_level(value)
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[float, BeforeValidator(_not_bool)]
Seconds = Annotated[float, BeforeValidator(_not_bool), Field(gt=0)]
Folder = Annotated[Path, BeforeValidator(_expand)]
OptionalPath = Annotated[Path | None, BeforeValidator(_none_if_empty), BeforeValidator(_expand)]
OptionalText = Annotated[str | None, BeforeValidator(_none_if_empty)]
Folders = Annotated[tuple[Annotated[Path, BeforeValidator(_expand)], ...], _items(os.pathsep)]
Texts = Annotated[tuple[str, ...], _items(",")]


class Section(BaseModel):
    """A frozen group of settings; unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ServerSettings(Section):
    """Where and how the server listens, where its state lives, how it logs."""

    host: str = Field("127.0.0.1", description="address to listen on")
    port: Int = Field(8443, ge=0, le=65535, description="TCP port (0 picks a free one)")
    jobs: Folders = Field((), description="job folders served besides the built-in ones")
    builtin_jobs: bool = Field(True, description="serve the built-in Azure jobs")
    job_rescan: Number = Field(
        2.0,
        ge=0,
        description="seconds between scans of the job folders: added, changed or "
        "removed jobs are served without a restart (0: never)",
    )
    state_dir: Folder = Field(Path(".runner"), description="run store and TLS files")
    tls: bool = Field(True, description="serve HTTPS (a self-signed pair unless given one)")
    tls_cert: OptionalPath = Field(None, description="certificate (PEM)")
    tls_key: OptionalPath = Field(None, description="private key (PEM) of tls_cert")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: JSON lines when stderr is not a terminal"
    )
    log_level: Annotated[str, AfterValidator(_log_level)] = Field(
        "info",
        description="debug, info, warning or error; then logger=level pairs, e.g. "
        "`info,azure=debug` (Azure SDK HTTP lines show only when named or at debug)",
    )
    access_log: bool = Field(True, description="one log line per HTTP request")
    web_ui: bool = Field(True, description="serve the web page at / (same auth as the API)")
    metrics_listen: OptionalText = Field(
        None,
        description="host:port of a separate loopback listener serving /metrics without "
        "auth; unset: GET /_metrics with the API's auth",
    )
    heartbeat: Seconds = Field(15.0, description="seconds between SSE heartbeat comments")
    public_url: OptionalText = Field(
        None, description="base URL users reach this runner at (links in chat, notices)"
    )
    loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="event loop: auto uses uvloop when installed"
    )

    @model_validator(mode="after")
    def _pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.metrics_listen is not None:
            loopback_address(self.metrics_listen)
        return self


def loopback_address(spec: str) -> tuple[str, int]:
    """``host:port`` of ``metrics_listen``, which must be loopback: it has no auth."""
    host, sep, port = spec.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics_listen must be host:port, got {spec!r}")
    if host not in ("localhost", "::1") and not host.startswith("127."):
        raise ValueError(
            f"metrics_listen {spec!r} must be a loopback address (127.x, ::1, localhost): "
            "it serves without authentication; beyond loopback use /_metrics with a token"
        )
    return host, int(port)


class LimitSettings(Section):
    """Concurrency, timeouts and the size of what a request may carry."""

    max_running: Int = Field(16, ge=1, description="runs executing at once")
    max_queued: Int = Field(256, ge=0, description="runs waiting; more → 429 Retry-After")
    default_timeout: Seconds = Field(3600.0, description="a job's timeout if it declares none")
    max_timeout: Seconds = Field(6 * 3600.0, description="ceiling on every job's timeout")
    max_body_bytes: Int = Field(1024 * 1024, ge=1, description="request body limit (413)")
    max_script_body_bytes: Int = Field(64 * 1024, ge=0, description="a script's $1 limit")
    max_params: Int = Field(64, ge=1, description="parameters per request")
    max_param_bytes: Int = Field(8192, ge=1, description="bytes per parameter value")
    max_header_bytes: Int = Field(32 * 1024, ge=1, description="request headers (431)")
    body_timeout: Seconds = Field(30.0, description="seconds to send a request body (408)")
    header_timeout: Seconds = Field(
        10.0, description="seconds to send a request's headers (then the connection closes)"
    )
    max_connections_per_address: Int = Field(
        256, ge=1, description="connections one client address may hold open"
    )
    drain_timeout: Seconds = Field(30.0, description="SIGTERM: seconds runs may finish in")
    kill_grace: Seconds = Field(5.0, description="script jobs: SIGTERM → SIGKILL seconds")
    retention_days: Number = Field(30.0, ge=0, description="finished runs older are pruned")
    retention_bytes: Int = Field(
        0, ge=0, description="oldest finished runs pruned while the store is larger (0: off)"
    )
    max_output_bytes: Int = Field(
        64 << 20, ge=1, description="output a run may write (a job may set its own); then fails"
    )
    replay_ttl: Seconds = Field(
        86400.0, description="how long a delivery id or Idempotency-Key answers with its run"
    )
    max_wait: Seconds = Field(
        6 * 3600.0, description="Prefer: wait without a number: 202 + Location after this"
    )


class AzureSettings(Section):
    """Which identity the runner acts as, and where Azure is."""

    identity: Literal["managed", "workload", "default"] = Field(
        "managed", description="managed (IMDS, App Service, Arc), workload (AKS) or default"
    )
    client_id: OptionalText = Field(None, description="a user-assigned identity's client id")
    subscription_id: OptionalText = Field(None, description="else from IMDS metadata")
    location: OptionalText = Field(None, description="else from IMDS metadata")
    arm_endpoint: str = Field("https://management.azure.com", description="ARM base URL")
    arm_audience: str = Field("https://management.azure.com", description="token audience")
    arm_ca: OptionalPath = Field(None, description="CA bundle for ARM/identity HTTPS")
    imds_endpoint: str = Field("http://169.254.169.254", description="instance metadata")
    arm_polling_interval: Number = Field(
        5.0, ge=0, description="seconds between polls of long operations (unless Retry-After)"
    )
    arm_retry_total: Int = Field(10, ge=0, description="retries of a failed ARM call")
    # azure-identity's own default backs off for 24-75 s on an IMDS 5xx/410; a few quick
    # retries keep "no identity here" an answer within seconds.
    identity_retry_total: Int = Field(3, ge=0, description="retries of a token request")
    keyvault_dns_suffix: str = Field(
        "vault.azure.net", description="Key Vault host names end with it (another cloud's)"
    )
    keyvault_connect: OptionalText = Field(
        None,
        description="host:port every Key Vault connection goes to, whatever the vault's "
        "name (the sandbox's; TLS still checks the vault's name); unset: DNS",
    )
    keyvault_retry_total: Int = Field(3, ge=0, description="retries of a Key Vault request")


class SecuritySettings(Section):
    """Who may call, which webhooks are verified, and the guards in front of the jobs."""

    htpasswd: OptionalPath = Field(None, description="users (htpasswd file, bcrypt)")
    token_store: OptionalPath = Field(None, description="API tokens; state_dir/tokens.json")
    insecure_no_auth: bool = Field(False, description="allow an open server beyond loopback")
    rate_limit: Number = Field(10.0, ge=0, description="runs started per second per caller")
    rate_burst: Int = Field(40, ge=1, description="runs started at once per caller")
    trusted_proxies: Texts = Field((), description="proxies whose X-Forwarded-For is believed")
    cors_origins: Texts = Field((), description="browser origins allowed to call the API")
    secret_refresh: Seconds = Field(
        300.0,
        description="seconds a keyvault: secret is used before it is read again (in the "
        "background; a failed read keeps the last value)",
    )
    # From runner.toml's [jobs."path"] tables, not from [server] keys.
    policies: tuple[JobPolicy, ...] = Field((), exclude=True)


class SandboxSettings(Section):
    """``--sandbox``: the emulated Azure in this process."""

    enabled: bool = Field(False, alias="sandbox", description="run on the emulated Azure")
    latency: Number = Field(
        0.0, ge=0, alias="sandbox_latency", description="seconds a network resource takes"
    )


def _source(value: Any) -> Any:
    """A secret is named by where it lives, never given in place (see webhooks/secret)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(("env:", "file:", "keyvault:")):
        # Never echoed: a refused value is most often the secret pasted in.
        raise ValueError('must be a secret source: "env:NAME", "file:PATH" or "keyvault:URL"')
    return value


def _targets(value: Any) -> Any:
    for entry in value:
        if not entry.startswith(("https://", "http://", "env:", "file:", "keyvault:")):
            raise ValueError('each entry is an http(s) URL, or a source ("env:NAME"…) of one')
    return value


SecretSource = Annotated[str | None, BeforeValidator(_source)]


def names_a_secret(field: Any) -> bool:
    """Whether a field holds a secret's source: its refused value is never echoed."""
    return any(getattr(m, "func", None) is _source for m in field.metadata)


Targets = Annotated[tuple[str, ...], _items(","), AfterValidator(_targets)]


class NotifySettings(Section):
    """Notifications: a signed POST to each URL when a run ends (or starts), from an
    outbox in the store, retried until delivered or the deadline passes."""

    notify: Targets = Field(
        (), description="URLs told about every run (also per job in runner.toml)"
    )
    notify_secret: SecretSource = Field(
        None, description="Standard Webhooks key (whsec_…) signing them (a secret source)"
    )
    notify_on: tuple[Literal["started", "finished"], ...] = Field(
        ("finished",), description="moments told: finished, started"
    )
    notify_deadline: Seconds = Field(86400.0, description="seconds a notice is retried for")
    notify_backoff: Seconds = Field(5.0, description="seconds to the first retry (doubling)")
    notify_timeout: Seconds = Field(10.0, description="seconds one try may take")


class ChatSettings(Section):
    """Chat commands (``[chat.slack]``, ``[chat.teams]`` in runner.toml, keys prefixed by
    the platform everywhere else: ``RUNNER_SLACK_SIGNING_SECRET``)."""

    slack_signing_secret: SecretSource = Field(
        None, description="Slack app signing secret (source): enables POST /_chat/slack"
    )
    slack_bot_token: SecretSource = Field(
        None, description="bot token (source): results of runs over 30 min via chat.postMessage"
    )
    slack_response: Literal["ephemeral", "in_channel"] = Field(
        "in_channel", description="who sees the acknowledgement and the result"
    )
    slack_progress: Number = Field(
        60.0, ge=0, description="seconds between progress posts (0: none; 3 at most)"
    )
    slack_allow: Texts = Field(
        (), description="TEAM/USER patterns who may run jobs naming no allow list (T1/*)"
    )
    slack_api_url: str = Field("https://slack.com/api", description="Slack Web API base URL")
    teams_secret: SecretSource = Field(
        None, description="outgoing webhook security token (source): enables /_chat/teams"
    )
    teams_allow: Texts = Field(
        (), description="AAD object ids (or *) who may run jobs naming no allow list"
    )
    teams_result_url: SecretSource = Field(
        None, description="Workflows/incoming webhook URL (source) for results as cards"
    )


SECTIONS: dict[str, type[Section]] = {
    "server": ServerSettings,
    "limits": LimitSettings,
    "azure": AzureSettings,
    "security": SecuritySettings,
    "sandbox": SandboxSettings,
    "notify": NotifySettings,
    "chat": ChatSettings,
}

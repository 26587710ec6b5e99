"""The notification URLs from the settings and runner.toml, read once at start-up."""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from runner.errors import ConfigError
from runner.notify.base import Links
from runner.notify.webhook import Target, WebhookNotices
from runner.policy import Policies
from runner.secrets import Secret, SecretSources
from runner.settings import NotifySettings
from runner.webhooks.standard import signing_key

log = logging.getLogger("runner.notify")

MAKE_KEY = (
    "python3 -c 'import base64,secrets;"
    'print("whsec_"+base64.b64encode(secrets.token_bytes(32)).decode())\''
)


def webhook_notices(
    settings: NotifySettings, policies: Policies, links: Links, sources: SecretSources
) -> WebhookNotices | None:
    """The URL notifier, or None when no URL is configured. ConfigError in words for a
    missing or malformed key, or a URL that is not one."""
    entries = list(settings.notify) + [e for p in policies.all for e in p.notify]
    if not entries:
        return None
    if settings.notify_secret is None:
        raise ConfigError(
            "notification URLs are configured but no notify_secret signs them: set "
            'notify_secret = "env:NAME" (or "file:PATH", "keyvault:…") to a Standard '
            f"Webhooks key, 'whsec_' and base64; make one with: {MAKE_KEY}"
        )
    # A malformed key stops the start, not the first notice.
    secret = sources.watch(settings.notify_secret, check=_signing_key)
    targets = {entry: _target(entry, sources) for entry in dict.fromkeys(entries)}
    everyone = list(settings.notify)

    def entries_for(job: str) -> list[str]:
        policy = policies.for_job(job)
        return everyone + list(policy.notify if policy else ())

    return WebhookNotices(
        secret,
        entries_for,
        targets,
        moments=settings.notify_on,
        deadline=settings.notify_deadline,
        links=links,
    )


def _signing_key(secret: Secret) -> None:
    signing_key(secret)


def _target(entry: str, sources: SecretSources) -> Target:
    """An entry as a URL (inline) or the source of one, checked where it can be now."""
    if entry.startswith(("http://", "https://")):
        _check_url(entry, f"notification URL {_host(entry)}")
        return entry
    return sources.watch(entry, check=lambda s: _check_url(
        s.reveal().decode("utf-8").strip(), f"the notification URL from {entry}"))  # fmt: skip


def _host(url: str) -> str:
    # Named by host only: a URL's path or query often holds its token.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…"


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        log.warning("%s is plain http: notices travel unencrypted", where)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

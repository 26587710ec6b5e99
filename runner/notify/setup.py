"""The notification URLs from the settings and runner.toml, read once at start-up."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from runner.errors import ConfigError
from runner.notify.base import Links
from runner.notify.webhook import WebhookNotices
from runner.policy import Policies
from runner.settings import NotifySettings
from runner.webhooks import load_secret
from runner.webhooks.standard import signing_key

log = logging.getLogger("runner.notify")

MAKE_KEY = (
    "python3 -c 'import base64,secrets;"
    'print("whsec_"+base64.b64encode(secrets.token_bytes(32)).decode())\''
)


def webhook_notices(
    settings: NotifySettings, policies: Policies, links: Links, environ: Mapping[str, str]
) -> WebhookNotices | None:
    """The URL notifier, or None when no URL is configured. ConfigError in words for a
    missing or malformed key, or a URL that is not one."""
    entries = list(settings.notify) + [e for p in policies.all for e in p.notify]
    if not entries:
        return None
    if settings.notify_secret is None:
        raise ConfigError(
            "notification URLs are configured but no notify_secret signs them: set "
            'notify_secret = "env:NAME" (or "file:PATH") to a Standard Webhooks key, '
            f"'whsec_' and base64; make one with: {MAKE_KEY}"
        )
    secret = load_secret(settings.notify_secret, environ)
    signing_key(secret)  # a malformed key stops the start, not the first notice
    urls = {entry: _url(entry, environ) for entry in dict.fromkeys(entries)}
    everyone = [urls[e] for e in settings.notify]

    def urls_for(job: str) -> list[str]:
        policy = policies.for_job(job)
        return everyone + [urls[e] for e in (policy.notify if policy else ())]

    return WebhookNotices(
        secret,
        urls_for,
        urls.values(),
        moments=settings.notify_on,
        deadline=settings.notify_deadline,
        links=links,
    )


def _url(entry: str, environ: Mapping[str, str]) -> str:
    """An entry as a URL: itself, or read from its source (never shown: may be secret)."""
    inline = entry.startswith(("http://", "https://"))
    url = entry if inline else load_secret(entry, environ).reveal().decode("utf-8").strip()
    parts = urlsplit(url)
    # Named by host only: a URL's path or query often holds its token.
    where = f"notification URL {parts.scheme}://{parts.hostname}/…"
    if not inline:
        where = f"the notification URL from {entry}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        log.warning("%s is plain http: notices travel unencrypted", where)
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

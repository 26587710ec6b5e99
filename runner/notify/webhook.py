"""Notification URLs: a Standard Webhooks POST to each, signed with ``notify_secret``.

The body is the spec's envelope, ``{"type": "run.finished", "timestamp": …, "data": run}``;
``webhook-id`` is the notice id (stable per run, moment and URL), so a receiver verifies
with any Standard Webhooks library and drops a repeat by its id.

A notice names its URL by a digest, not by value: URLs often carry a token (a Teams
Workflows ``sig=``, a Slack incoming-webhook path), and the store keeps no secret. A URL no
longer configured when its notice comes due is given up, saying so.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

import httpx

from runner.notify.base import Links, Moment, Sent, notice_id
from runner.records import Event, Notice, RunRecord
from runner.webhooks import Secret
from runner.webhooks.standard import sign


def url_key(url: str) -> str:
    """How a notice names a URL in the store: its digest."""
    return "url:" + hashlib.sha256(url.encode()).hexdigest()[:24]


class WebhookNotices:
    """Composes and sends the notices of the configured URLs (global, and per job)."""

    channels: tuple[str, ...] = ("webhook",)
    wants_tail = False

    def __init__(
        self,
        secret: Secret,
        urls_for: Callable[[str], Sequence[str]],
        known: Collection[str],
        *,
        moments: Collection[str] = ("finished",),
        deadline: float = 86400.0,
        links: Links | None = None,
    ) -> None:
        self.secret = secret
        self.urls_for = urls_for  # job path → its URLs (the global ones and its own)
        self._by_key = {url_key(u): u for u in known}
        self.moments = frozenset(moments)
        self.deadline = deadline
        self.links = links or Links()

    def compose(self, run: RunRecord, moment: Moment, tail: Sequence[str]) -> list[Notice]:
        if moment not in self.moments:
            return []
        urls = self.urls_for(run.job)
        if not urls:
            return []
        now = time.time()
        body = json.dumps(
            {
                "type": f"run.{moment}",
                "timestamp": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
                "data": {**run.to_json(), "url": self.links.run(run.id)},
            }
        )
        return [
            Notice(
                notice_id(run.id, moment, url_key(url)),
                run.id,
                "webhook",
                url_key(url),
                body,
                created=now,
                deadline=now + self.deadline,
                next_at=now,
            )  # fmt: skip
            for url in dict.fromkeys(urls)
        ]

    def progress(self, run: RunRecord, event: Event) -> list[Notice]:
        return []

    async def send(self, http: httpx.AsyncClient, notice: Notice) -> Sent:
        url = self._by_key.get(notice.target)
        if url is None:
            return Sent(None, "this notification URL is no longer configured", final=True)
        body = notice.body.encode()
        headers = sign(self.secret, notice.id, int(time.time()), body)
        headers["content-type"] = "application/json"
        response = await http.post(url, content=body, headers=headers)
        return Sent.of(response, "the receiver")

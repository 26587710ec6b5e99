"""Notification URLs: a Standard Webhooks POST to each, signed with ``notify_secret``.

The body is the spec's envelope, ``{"type": "run.finished", "timestamp": …, "data": run}``;
``webhook-id`` is the notice id (stable per run, moment and URL), so a receiver verifies
with any Standard Webhooks library and drops a repeat by its id.

A notice names its URL by the digest of its entry in the configuration (the URL, or the
source of one), not by value: URLs often carry a token (a Teams Workflows ``sig=``, a Slack
incoming-webhook path), and the store keeps no secret. A URL from a source is read when
the notice is sent (a rotated one counts at once); one no longer configured when its
notice comes due is given up, saying so.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

import httpx

from runner.notify.base import Links, Moment, Sent, notice_id
from runner.records import Event, Notice, RunRecord
from runner.secrets import Watched
from runner.webhooks.standard import sign


def url_key(entry: str) -> str:
    """How a notice names a URL in the store: the digest of its configured entry."""
    return "url:" + hashlib.sha256(entry.encode()).hexdigest()[:24]


Target = str | Watched  # a URL given inline, or the source holding one


class WebhookNotices:
    """Composes and sends the notices of the configured URLs (global, and per job)."""

    channels: tuple[str, ...] = ("webhook",)
    wants_tail = False

    def __init__(
        self,
        secret: Watched,
        entries_for: Callable[[str], Sequence[str]],
        targets: Mapping[str, Target],
        *,
        moments: Collection[str] = ("finished",),
        deadline: float = 86400.0,
        links: Links | None = None,
    ) -> None:
        self.secret = secret
        self.entries_for = entries_for  # job path → its entries (global ones and its own)
        self._by_key = {url_key(entry): target for entry, target in targets.items()}
        self.moments = frozenset(moments)
        self.deadline = deadline
        self.links = links or Links()

    def compose(self, run: RunRecord, moment: Moment, tail: Sequence[str]) -> list[Notice]:
        if moment not in self.moments:
            return []
        entries = self.entries_for(run.job)
        if not entries:
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
                notice_id(run.id, moment, url_key(e)),
                run.id,
                "webhook",
                url_key(e),
                body,
                created=now,
                deadline=now + self.deadline,
                next_at=now,
            )  # fmt: skip
            for e in dict.fromkeys(entries)
        ]

    def progress(self, run: RunRecord, event: Event) -> list[Notice]:
        return []

    async def send(self, http: httpx.AsyncClient, notice: Notice) -> Sent:
        target = self._by_key.get(notice.target)
        if target is None:
            return Sent(None, "this notification URL is no longer configured", final=True)
        url = target if isinstance(target, str) else target.current.reveal().decode().strip()
        if not url.startswith(("https://", "http://")):
            return Sent(None, f"the URL from {target} is not an http(s) URL", final=True)
        body = notice.body.encode()
        headers = sign(self.secret.current, notice.id, int(time.time()), body)
        headers["content-type"] = "application/json"
        response = await http.post(url, content=body, headers=headers)
        return Sent.of(response, "the receiver")

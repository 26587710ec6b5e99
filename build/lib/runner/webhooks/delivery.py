"""What a verified webhook delivery tells the HTTP layer: who sent it, which one, and
whether to run the job or only to answer (a GitHub ping, a Slack ``ssl_check``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["run", "ping", "ssl_check", "url_verification"]


@dataclass(frozen=True)
class Delivery:
    """One accepted delivery.

    ``delivery_id`` is the sender's id for the delivery, stable across its retries where the
    sender has one (``X-GitHub-Delivery``, ``webhook-id``, ``Idempotency-Key``, Slack's
    ``event_id``); the replay guard is keyed by it. ``timestamp`` is the signed send time,
    when the scheme has one. ``kind`` other than ``"run"`` is answered and never run:
    ``challenge`` is what a Slack ``url_verification`` must be answered with.
    ``verified`` is False only for a Slack ``ssl_check`` sent without a signature, which
    Slack does (Bolt answers it before verifying): answer 200, do nothing else.
    """

    scheme: str
    delivery_id: str | None
    timestamp: float | None
    event: str | None
    kind: Kind = "run"
    challenge: str | None = None
    verified: bool = True

    @property
    def runs(self) -> bool:
        """True when the delivery should start a run, False when it is only answered."""
        return self.kind == "run" and self.verified

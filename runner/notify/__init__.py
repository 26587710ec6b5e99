"""Notifications that are delivered: what a run's end (or start) tells the outside.

    a hook (run finished) ─► composers make notices ─► the store's outbox
    the sender (one task) ─► takes due notices under a lease ─► each one's channel sends
                           ─► delivered, or tried again later (doubling) until its deadline

The outbox is the truth: a notice is written before anything is sent, so a restart or a
crash loses none (and a start-up pass adds those a crash took before they were written).
Ids are stable per run, moment and target, so a receiver that sees one twice knows it.
Slack and Teams replies (:mod:`runner.chat`) are composers of the same outbox.
"""

from runner.notify.base import Composer, Links, Moment, Sent, notice_id
from runner.notify.outbox import Outbox
from runner.notify.webhook import WebhookNotices

__all__ = ["Composer", "Links", "Moment", "Outbox", "Sent", "WebhookNotices", "notice_id"]

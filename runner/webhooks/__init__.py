"""Webhook deliveries verified before anything runs: GitHub, GitLab, Slack, Microsoft
Teams and Standard Webhooks signatures, checked over the raw body in constant time, with
the time window (issue 4, item 2). A delivery seen before is recognised by its id
(:mod:`runner.replays`, the same mechanism as Idempotency-Key).

Pure and framework-independent: the HTTP layer passes headers, raw body and clock in,
and gets a :class:`Delivery` back or a :class:`SignatureError` to answer with::

    delivery = verify("github", secret, request.headers, body, now=time.time())
    if not delivery.runs:            # ping, ssl_check, url_verification: answer only
        ...
"""

from runner.webhooks.delivery import Delivery, Kind
from runner.webhooks.errors import (
    BadSignature,
    MalformedHeader,
    MissingHeader,
    SignatureError,
    StaleTimestamp,
)
from runner.webhooks.secret import Secret, load_secret
from runner.webhooks.verify import DEFAULT_WINDOW, SCHEMES, check_secret, verify

__all__ = [
    "DEFAULT_WINDOW",
    "SCHEMES",
    "BadSignature",
    "Delivery",
    "Kind",
    "MalformedHeader",
    "MissingHeader",
    "Secret",
    "SignatureError",
    "StaleTimestamp",
    "check_secret",
    "load_secret",
    "verify",
]

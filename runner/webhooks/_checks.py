"""Checks every scheme shares: headers, Unix timestamps, the time window, HMAC-SHA256.

All comparisons of a computed value with a received one go through
``hmac.compare_digest``, so the time taken does not reveal how many leading bytes matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.webhooks.errors import BadSignature, MalformedHeader, MissingHeader, StaleTimestamp
from runner.webhooks.secret import Secret

# Delivery ids key the replay guard: bound them so a sender cannot fill it with megabytes.
MAX_ID = 256
_UNIX = re.compile(r"[0-9]{1,12}")


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names folded to lower case (a plain dict is not case-insensitive)."""
    return {k.lower(): v for k, v in headers.items()}


def require(headers: Mapping[str, str], name: str, scheme: str, hint: str = "") -> str:
    """The header's value, or :class:`MissingHeader` naming it (and what to configure)."""
    value = headers.get(name.lower())
    if value is None or not value.strip():
        raise MissingHeader(scheme, f"the {name} header is missing{hint}")
    return value.strip()


def delivery_id(value: str | None, name: str, scheme: str) -> str | None:
    """A delivery id as sent, refused when too long to be a real one."""
    if value is None or not value.strip():
        return None
    if len(value) > MAX_ID or not value.isprintable():
        raise MalformedHeader(scheme, f"the {name} header is not a delivery id")
    return value.strip()


def unix_time(value: str, name: str, scheme: str) -> int:
    """Whole seconds since the epoch, as the header carries them, else MalformedHeader."""
    if not _UNIX.fullmatch(value):
        raise MalformedHeader(scheme, f"the {name} header must be whole seconds since 1970")
    return int(value)


def check_window(scheme: str, timestamp: float, *, now: float, window: float) -> None:
    """Refuse a timestamp more than ``window`` seconds before or after ``now``."""
    skew = timestamp - now
    if skew < -window:
        raise StaleTimestamp(
            scheme,
            f"the delivery was signed {-skew:.0f} s ago, more than the {window:.0f} s allowed: "
            "a replayed delivery, or the sender's or this server's clock is wrong (check NTP)",
            skew=skew,
        )
    if skew > window:
        raise StaleTimestamp(
            scheme,
            f"the delivery is signed {skew:.0f} s in the future, more than the {window:.0f} s "
            "allowed: the sender's or this server's clock is wrong (check NTP)",
            skew=skew,
        )


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 of the concatenated parts, without building the concatenation."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def any_equal(expected: Iterable[bytes], received: Sequence[bytes]) -> bool:
    """True when any expected value equals any received one, each compared in constant time.

    Every pair is compared (no early exit), so timing does not tell which one matched.
    """
    matched = False
    for want in expected:
        for got in received:
            matched |= hmac.compare_digest(want, got)
    return matched


def header_bytes(value: str) -> bytes:
    """A header's raw bytes: ASGI servers decode headers as latin-1, so encode them back."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def json_object(body: bytes) -> dict[str, Any] | None:
    """The verified body's fields when it is a JSON object, else None (a form, an array,
    bad JSON). A form fails at its first byte, so trying JSON first costs nothing."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def sources(secrets: Sequence[Secret]) -> str:
    """Where the secrets came from, for a message: ``env:A or file:/b``. Never the values."""
    return " or ".join(s.source for s in secrets)


def bad_signature(scheme: str, what: str, secrets: Sequence[Secret], where: str) -> BadSignature:
    """The error for a signature that matches no secret, saying what to compare."""
    return BadSignature(
        scheme,
        f"{what} matches none of this job's secrets ({sources(secrets)}): the body was "
        f"changed on the way, or the secret set in {where} differs from this job's",
    )

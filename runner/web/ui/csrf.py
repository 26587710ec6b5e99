"""Cross-site request forgery, kept out two ways.

1. :class:`CrossSiteGuard` (pure ASGI, for every endpoint): a browser marks each request
   with ``Sec-Fetch-Site``; an unsafe request another site made (``cross-site`` or
   ``same-site``) is refused unless its ``Origin`` is in ``cors_origins``. A browser
   holding Basic credentials for the runner would otherwise run a job for any page that
   posts a form to it. Clients that are not browsers send no such header and pass.
2. The web page's own POSTs (``/_ui/…``) carry ``X-CSRF-Token``: an HMAC, under a key
   kept in the state dir, of the principal the page was served to and when. Another
   site cannot read the page to learn it, nor forge it, nor use one issued to someone
   else. The API's POSTs stay as they are (token or Basic, no page involved).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from runner.errors import Forbidden
from runner.web.problems import problem

HEADER = "x-csrf-token"
LIFETIME = 12 * 3600.0  # a page left open over a working day keeps working
UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))


class Tokens:
    """Issues and checks the page's tokens."""

    def __init__(self, key: bytes, lifetime: float = LIFETIME) -> None:
        self.key = key
        self.lifetime = lifetime

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Tokens:
        """The key from ``state_dir/ui.key`` (made 0600 on first use), so that a restart
        or another worker on the same state dir accepts the tokens of an open page."""
        path = state_dir / "ui.key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path.read_bytes())
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return cls(key)

    def _mac(self, caller: str, issued: int) -> str:
        digest = hmac.new(self.key, f"{caller}\n{issued}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, caller: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        return f"{issued}.{self._mac(caller, issued)}"

    def check(self, caller: str, token: str | None, now: float | None = None) -> None:
        """Raise Forbidden unless ``token`` was issued to ``caller`` and is still fresh."""
        if not token:
            raise Forbidden("the web page's request has no X-CSRF-Token: reload the page")
        stamp, _, mac = token.partition(".")
        if not stamp.isdigit() or not hmac.compare_digest(mac, self._mac(caller, int(stamp))):
            raise Forbidden("the X-CSRF-Token is not this page's: reload the page")
        if (time.time() if now is None else now) - int(stamp) > self.lifetime:
            raise Forbidden("the page is too old (its X-CSRF-Token expired): reload it")


class CrossSiteGuard:
    """Refuses unsafe requests that a browser says another site made."""

    def __init__(self, app: ASGIApp, allowed_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.allowed = frozenset(o.rstrip("/") for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE:
            headers = dict(scope["headers"])
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
            origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/")
            if site in ("cross-site", "same-site") and origin not in self.allowed:
                refusal = problem(
                    403, "Forbidden",
                    f"a {scope['method']} from another site ({origin or 'unknown origin'}) "
                    "is refused: add it to cors_origins if it should call this runner",
                )  # fmt: skip
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

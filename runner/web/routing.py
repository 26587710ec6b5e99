"""Which job a request addresses, and who is asking: answered once for every layer.

The webhook gate, the authentication middleware and the job endpoints all ask
:func:`job_path`; the principal that authentication (or the gate, for a verified
delivery) found travels in the ASGI scope under :data:`SCOPE_KEY`.
"""

from __future__ import annotations

from starlette.types import Scope

from runner.auth import ANONYMOUS, Principal

# The ASGI scope key the authentication middleware (or the webhook gate before it) sets.
SCOPE_KEY = "runner.principal"
# Why a guard refused a request (``rate_limited``, ``failed_login``, ``login_throttled``),
# and a webhook's outcome at the gate (scheme, ``forged`` | ``stale`` | ``answered``): set
# where it is decided, read by the access log and the metrics (runner.web.access).
REFUSAL_KEY = "runner.refusal"
WEBHOOK_KEY = "runner.webhook"


def principal_of(scope: Scope) -> Principal:
    """The request's principal; anonymous when no authentication middleware ran."""
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, Principal) else ANONYMOUS


def route_path(scope: Scope) -> str:
    """The request path below the app's mount point (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def job_path(scope: Scope) -> str | None:
    """The job path a request addresses (``deploy/site``), or None when it addresses the
    runner's own endpoints (``/_…``) or is not plainly spelled.

    Plainly spelled: no percent-escape, backslash or NUL in the raw path. The job is then
    looked up in the catalogue as a dictionary key, so no spelling of ``..`` can reach a
    file the catalogue did not list; an odd spelling addresses no job at all (404).
    """
    path = route_path(scope)
    if path.startswith("/_"):
        return None
    raw: bytes = scope.get("raw_path") or path.encode()
    raw = raw.split(b"?", 1)[0]
    root = scope.get("root_path", "").encode()
    if root and raw.startswith(root):
        raw = raw[len(root) :]
    if b"%" in raw or b"\\" in raw or b"\x00" in raw or not raw.startswith(b"/"):
        return None
    return raw[1:].decode("ascii", "replace")

"""Authentication: who is calling, and may they run this job.

::

    htpasswd.py   users: bcrypt htpasswd file, reloaded on change; ``set_password``
    tokens.py     bearer API tokens for CI: stored as SHA-256, limited to job patterns
    principal.py  Principal (user, token, webhook, anonymous), ``may_run``, ``caller``
    ratelimit.py  token buckets per principal, bounded memory
    bind.py       check_bind: no unauthenticated listening beyond loopback by accident
    cli.py        ``runner passwd`` and ``runner token``

No HTTP here: the middleware that asks for credentials lives in ``runner.web.auth``.
"""

from __future__ import annotations

from runner.auth.bind import InsecureBindError, check_bind
from runner.auth.htpasswd import Htpasswd, HtpasswdError, set_password
from runner.auth.principal import ANONYMOUS, Principal
from runner.auth.ratelimit import RateLimiter
from runner.auth.tokens import TokenInfo, TokenStore, TokenStoreError

__all__ = [
    "ANONYMOUS",
    "Htpasswd",
    "HtpasswdError",
    "InsecureBindError",
    "Principal",
    "RateLimiter",
    "TokenInfo",
    "TokenStore",
    "TokenStoreError",
    "check_bind",
    "set_password",
]

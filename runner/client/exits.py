"""Exit codes of the client: what a CI step's status means.

0–255  the run's own exit code (it succeeded, or failed with that code)
124    the run timed out                    (as timeout(1))
130    the run was cancelled, or you detached from it with Ctrl-C  (as shells report)
75     the run was interrupted: the server stopped under it; start it again (EX_TEMPFAIL)
69     the server could not be reached after every try             (EX_UNAVAILABLE)
64     the server refused the request (4xx); the problem is printed (EX_USAGE)
2      the command line or the local configuration is wrong
"""

from __future__ import annotations

from typing import Any

TIMED_OUT = 124
CANCELLED = 130
DETACHED = 130
INTERRUPTED = 75
UNREACHABLE = 69
REFUSED = 64
USAGE = 2


def of_done(done: dict[str, Any] | None) -> int:
    """The exit code for a run that ended with the ``done`` body given."""
    if done is None:
        return INTERRUPTED
    state = done.get("state")
    if state == "timed_out":
        return TIMED_OUT
    if state == "cancelled":
        return CANCELLED
    if state == "interrupted":
        return INTERRUPTED
    code = done.get("exit_code")
    if state == "succeeded":
        return 0
    return 1 if code is None else int(code)

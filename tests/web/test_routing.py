"""Which job a request addresses and who asks: one answer for every layer."""

from __future__ import annotations

import pytest

from runner.auth import ANONYMOUS, Principal
from runner.web.routing import SCOPE_KEY, job_path, principal_of


def test_principal_of_defaults_to_anonymous():
    """Without the middleware a scope has the anonymous principal."""
    assert principal_of({}) is ANONYMOUS
    alice = Principal.user("alice")
    assert principal_of({SCOPE_KEY: alice}) is alice


@pytest.mark.parametrize(
    ("raw", "root", "job"),
    [
        (b"/vm/create", "", "vm/create"),
        (b"/vm/create?rg=a", "", "vm/create"),
        (b"/runner/vm/create", "/runner", "vm/create"),
        (b"/_runs", "", None),
        (b"/runner/_jobs", "/runner", None),
        (b"/vm%2fcreate", "", None),
        (b"/vm/..%2fcreate", "", None),
        (b"/vm\\create", "", None),
        (b"/", "", ""),
    ],
)
def test_job_path_is_the_plainly_spelled_path_below_the_mount_point(raw, root, job):
    """Runner endpoints and odd spellings address no job; a sub-path mount is stripped."""
    path = raw.split(b"?")[0].decode()
    scope = {"type": "http", "path": path, "raw_path": raw, "root_path": root}
    assert job_path(scope) == job

"""Nothing outside the job folders can run: every traversal spelling ends in 404."""

from __future__ import annotations

import pytest

from tests.conftest import raw_tls


def raw_request(srv, target: bytes, method: bytes = b"POST") -> tuple[int, bytes]:
    """Send a request line exactly as given (no client-side normalisation)."""
    with raw_tls(srv) as s:
        s.sendall(
            method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.fixture
def evil_tree(tmp_path):
    """A job folder beside a sibling folder holding a script that must never run."""
    jobs = tmp_path / "jobs"
    (jobs / "deploy").mkdir(parents=True)
    marker = tmp_path / "pwned"
    evil = tmp_path / "scripts2"
    evil.mkdir()
    for folder in (evil, jobs / "deploy"):
        script = folder / "evil.sh"
        script.write_text(f"#!/bin/sh\ntouch {marker}\n")
        script.chmod(0o755)
    (jobs / "deploy" / "evil.sh").write_text("#!/bin/sh\necho fine\n")
    (jobs / ".hidden.sh").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (jobs / ".hidden.sh").chmod(0o755)
    return jobs, marker


TARGETS = [
    b"/..%2fscripts2%2fevil",  # webhookd's bug: encoded slash and dot-dot
    b"/deploy/..%2f..%2fscripts2%2fevil",
    b"/deploy/%2e%2e/%2e%2e/scripts2/evil",
    b"/deploy/%252e%252e%252fscripts2%252fevil",  # double-encoded
    b"/deploy/..\\..\\scripts2\\evil",  # backslashes
    b"/deploy%5c..%5c..%5cscripts2%5cevil",
    b"/deploy/evil%00.sh",  # NUL
    b"/deploy/evil.sh",  # the file name, not the job path
    b"/.hidden",
    b"/%2ehidden",
    b"/deploy//evil",
    b"/deploy/./evil",
    b"/DEPLOY/EVIL",
    b"/deploy/evil/",
    b"/_runs/../deploy/evil",
]


@pytest.mark.parametrize("target", TARGETS, ids=[t.decode() for t in TARGETS])
def test_traversal_spellings_are_404_and_run_nothing(serve, evil_tree, target):
    """Encoded, double-encoded, backslashed, NUL and hidden paths never reach a file."""
    jobs, marker = evil_tree
    srv = serve(jobs=(jobs,))
    status, _ = raw_request(srv, target)
    assert status in (404, 400)
    assert not marker.exists()
    with srv.client() as c:
        assert c.get("/_runs").json()["runs"] == []


def test_the_plain_path_still_runs(serve, evil_tree):
    """The one right spelling of a job path runs the job."""
    jobs, _ = evil_tree
    srv = serve(jobs=(jobs,))
    status, data = raw_request(srv, b"/deploy/evil")
    assert status == 200
    assert b"fine" in data

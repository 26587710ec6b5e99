"""Through nginx with a short read timeout: silent runs keep their stream, wait answers."""

from __future__ import annotations

import time

import httpx


def test_a_text_stream_silent_longer_than_nginx_waits_stays_open_and_completes(serve, nginx):
    """proxy_read_timeout 5 s, a run silent for 12 s, heartbeat 2 s: the keepalive lines
    keep nginx from closing; the answer ends with the result line."""
    srv = serve(heartbeat=2.0)
    front = nginx(srv, "proxy_read_timeout 5s;")
    with httpx.Client(base_url=front, timeout=30) as c:
        r = c.post("/py/sleep?seconds=12")
    lines = r.text.splitlines()
    assert r.status_code == 200
    assert lines[-1].startswith("runner: run=") and "state=succeeded" in lines[-1], r.text
    assert sum("still running" in line for line in lines) >= 4


def test_prefer_wait_2_through_nginx_answers_202_with_location_at_2_seconds(serve, nginx):
    """A silent 12 s run asked with Prefer: wait=2 answers 202 + Location after ~2 s."""
    srv = serve(heartbeat=2.0)
    front = nginx(srv, "proxy_read_timeout 5s;")
    with httpx.Client(base_url=front, timeout=30) as c:
        t0 = time.monotonic()
        r = c.post("/py/sleep?seconds=12", headers={"Prefer": "wait=2"})
        took = time.monotonic() - t0
    assert r.status_code == 202
    assert 1.8 <= took < 4
    assert r.headers["location"].startswith("/_runs/")

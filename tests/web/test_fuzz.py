"""Fuzzing the HTTP surface from /_openapi.json: no input makes the runner answer 5xx.

Schemathesis generates requests (valid and invalid) for every operation the document
lists, against a real server over TLS. The size fits CI; `scripts/fuzz.py` runs more.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

FUZZ_JOBS = Path(__file__).parent.parent / "fuzz_jobs"

# Wait mode answers 500/504/409 by design when a run fails: those are results, not crashes.
DESIGNED = {"500": "failed", "504": "timed_out", "409": "cancelled"}


@pytest.fixture
def api(serve):
    """The runner's own OpenAPI document, served by a real server."""
    srv = serve(jobs=(FUZZ_JOBS,), max_queued=1000, max_running=8, default_timeout=5)
    schema = schemathesis.openapi.from_url(f"{srv.url}/_openapi.json", verify=str(srv.cacert))
    schema.config.update(base_url=srv.url)
    return schema, srv


def test_the_document_lists_every_job_and_endpoint(api):
    """/_openapi.json names the runner's endpoints and each job with its parameters."""
    schema, _ = api
    paths = schema.raw_schema["paths"]
    assert {"/_runs", "/_runs/{run_id}/events", "/typed", "/sh/echo"} <= set(paths)
    params = {p["name"] for p in paths["/typed"]["post"]["parameters"]}
    assert {"name", "count", "ratio", "size", "flag", "note", "pw", "_mode"} <= params


def fuzz(schema, cacert, examples: int) -> dict[str, int]:
    """Run ``examples`` generated cases per operation; counts of cases and of 5xx answers.

    Schemathesis' pytest plugin does not load under this pytest, so its strategies are
    driven with hypothesis directly.
    """
    counts = {"cases": 0, "5xx": 0}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call(verify=str(cacert) if cacert else True, timeout=30)
            counts["cases"] += 1
            state = response.headers.get("x-run-state")
            if isinstance(state, list):  # schemathesis' Response lists header values
                state = state[0] if state else None
            if response.status_code >= 500 and DESIGNED.get(str(response.status_code)) != state:
                counts["5xx"] += 1
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}"
                )

        check()
    counts["failures"] = len(failures)
    assert not failures, "\n".join(failures[:10])
    return counts


def test_no_request_makes_the_runner_answer_5xx(api):
    """Generated requests get a 2xx/4xx answer (or a designed wait-mode status), never a crash."""
    schema, srv = api
    counts = fuzz(schema, srv.cacert, examples=15)
    assert counts["cases"] >= 60
    assert counts["5xx"] == 0

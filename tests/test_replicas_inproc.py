"""Two replicas in this process (servers in threads) on one PostgreSQL database: the same
behaviours as tests/test_replicas.py, quicker, with the coordination code in view of
coverage."""

from __future__ import annotations

import json

import pytest

from runner.store.postgres import PostgresStore
from tests.conftest import first_events, parse_sse, wait_final, wait_logged

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def pair(serve, pg_database):
    def start(**overrides):
        return [
            serve(store=PostgresStore(pg_database), lease_timeout=2, **overrides) for _ in range(2)
        ]

    return start


def test_a_run_on_a_is_followed_and_cancelled_from_b(pair):
    a, b = pair()
    with a.client() as ca, b.client() as cb:
        run_id = ca.post("/py/lines", params={"n": 400, "every": 1, "pause": 0.02},
                         headers=ASYNC).json()["id"]  # fmt: skip
        wait_logged(ca, run_id, "line 3")
        with cb.stream("GET", f"/_runs/{run_id}/events") as r:
            seen = first_events(r, 10)
        assert [e["id"] for e in seen] == list(range(1, len(seen) + 1))
        cancelled = cb.post(f"/_runs/{run_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        events = parse_sse(cb.get(f"/_runs/{run_id}/events").text)
        assert json.loads(events[-1]["data"])["state"] == "cancelled"
        assert cb.post(f"/_runs/{run_id}/cancel").status_code == 409


def test_runs_of_one_lock_key_queue_in_the_table_and_run_on_either(pair):
    a, b = pair(max_running=1)
    with a.client() as ca, b.client() as cb:
        ids = [
            (ca if i % 2 else cb).post("/py/sleep", params={"seconds": 0.05, "key": "one"},
                                       headers=ASYNC).json()["id"]
            for i in range(6)
        ]  # fmt: skip
        for run_id in ids:
            assert wait_final(ca, run_id, within=30)["state"] == "succeeded"
        status = ca.get("/_health")
        assert status.status_code == 200


def test_a_replica_stopped_leaves_its_queue_to_the_other(pair):
    """A replica that stops hands its queued runs (waiting for a lock key) to the one
    that stays; nothing runs twice."""
    a, b = pair()
    with a.client() as ca:
        holder = ca.post("/py/sleep", params={"seconds": 1.0, "key": "h"}, headers=ASYNC)
        waiting = ca.post("/py/sleep", params={"seconds": 0.05, "key": "h"}, headers=ASYNC)
        wait_logged(ca, holder.json()["id"], "start")
    a.stop()
    with b.client() as cb:
        first = wait_final(cb, holder.json()["id"], within=30)
        assert first["state"] in ("succeeded", "cancelled"), first
        assert wait_final(cb, waiting.json()["id"], within=30)["state"] == "succeeded"
        log = cb.get(f"/_runs/{waiting.json()['id']}/log").text
        assert log.count("start ") == 1

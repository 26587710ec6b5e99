"""Idempotency-Key on POST /<job>: a retried request starts one run, never two."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from tests.conftest import wait_final


def test_two_posts_with_one_key_start_one_run_and_other_params_are_refused(serve):
    """The repeat answers with the original run (X-Replayed); reused for another request: 422."""
    srv = serve()
    key = {"Idempotency-Key": "deploy-1"}
    with srv.client() as c:
        first = c.post("/py/echo?rg=a", headers={**key, "Prefer": "wait"})
        again = c.post("/py/echo?rg=a", headers=key)
        other = c.post("/py/echo?rg=b", headers=key)
        runs = c.get("/_runs").json()["runs"]
    assert first.status_code == 200
    assert again.status_code == 200 and again.headers["x-replayed"] == "true"
    assert again.json()["id"] == first.headers["x-run-id"]
    assert other.status_code == 422
    assert other.json()["errors"][0]["name"] == "Idempotency-Key"
    assert len(runs) == 1


def test_a_key_survives_a_restart(serve, tmp_path):
    """After a restart on the same state dir, the key still answers with its run."""
    state = tmp_path / "state"
    srv = serve(state_dir=state)
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a", headers={"Idempotency-Key": "k"}).headers["x-run-id"]
        wait_final(c, run_id)
    srv.stop()
    again = serve(state_dir=state)
    with again.client() as c:
        r = c.post("/py/echo?rg=a", headers={"Idempotency-Key": "k"})
        assert r.headers["x-replayed"] == "true" and r.json()["id"] == run_id
        assert len(c.get("/_runs").json()["runs"]) == 1


def test_eight_concurrent_clients_with_one_key_start_exactly_one_run(serve):
    """Eight copies at once: one run; each copy gets it, or a 409 to retry shortly."""
    srv = serve()

    def post(_: int) -> tuple[int, str | None]:
        with srv.client() as c:
            r = c.post(
                "/py/sleep?seconds=0.5",
                headers={"Idempotency-Key": "race", "Prefer": "respond-async"},
            )
            return r.status_code, r.headers.get("x-run-id")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    ids = {run_id for status, run_id in answers if status in (200, 202)}
    assert len(ids) == 1, answers
    assert all(status in (200, 202, 409) for status, _ in answers)
    with srv.client() as c:
        assert len(c.get("/_runs").json()["runs"]) == 1


@pytest.mark.parametrize("bad", [b"", b"x" * 256, "café".encode(), b"a\x01b"])
def test_an_unusable_key_is_refused_before_any_run(serve, bad):
    """Empty, over 255 characters or not printable ASCII: 422 (a control character is
    refused by the HTTP parser first: 400); nothing run."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/echo?rg=a", headers=[(b"Idempotency-Key", bad)])
        assert r.status_code == (400 if b"\x01" in bad else 422)
        assert c.get("/_runs").json()["runs"] == []


def test_a_token_created_while_the_server_runs_works_at_once(serve, tmp_path):
    """The first token, made by `runner token create` beside a running server, is taken
    at its next request (no restart); anonymous calls stop."""
    from runner.auth.tokens import TokenStore

    state = tmp_path / "state"
    srv = serve(state_dir=state)
    with srv.client() as c:
        assert c.get("/_runs").status_code == 200  # loopback, no credentials yet
        token = TokenStore(state / "tokens.json").create("ci", ["py/*"])
        time.sleep(0.01)
        assert c.get("/_runs").status_code == 401
        r = c.post("/py/echo?rg=a", headers={"Authorization": f"Bearer {token}", "Prefer": "wait"})
        assert r.status_code == 200
        record = c.get(
            f"/_runs/{r.headers['x-run-id']}", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert record["caller"] == "token:ci"

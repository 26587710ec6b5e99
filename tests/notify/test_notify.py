"""Notification URLs (issue 9, item 4): a signed POST when a run ends, retried from the
outbox until delivered, every try visible on the run; nothing lost to a crash."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
import standardwebhooks

from runner.records import RunRecord
from runner.store import SQLiteStore
from tests.conftest import wait_final
from tests.receiver import Receiver

KEY = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_KEY", KEY)


def _notices(c, run_id: str) -> list[dict]:
    return c.get(f"/_runs/{run_id}/notifications").json()["notifications"]


def _wait_notices(c, run_id: str, ready, within: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + within
    while not ready(found := _notices(c, run_id)):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def test_a_finished_run_is_told_signed_once_and_shown_on_the_run(serve, receiver):
    """The receiver verifies the POST with the reference Standard Webhooks library; the
    body says how the run ended; the run lists the notice as delivered."""
    srv = serve(notify=(receiver.url + "/hook",), notify_secret="env:NOTIFY_KEY")
    with srv.client() as c:
        run_id = c.post("/py/fail?how=code").headers["x-run-id"]
        wait_final(c, run_id)
        got = receiver.delivered("/hook")
        payload = standardwebhooks.Webhook(KEY).verify(got.body, got.headers)
        assert payload["type"] == "run.finished"
        data = payload["data"]
        assert (data["id"], data["state"], data["exit_code"]) == (run_id, "failed", 7)
        assert data["url"] == f"{srv.url}/_runs/{run_id}"
        assert got.headers["webhook-id"].startswith(f"msg_{run_id}_finished_")
        (notice,) = _wait_notices(c, run_id, lambda n: n and n[0]["delivered"])
    assert notice["attempts"] == 1 and notice["last_status"] == 200 and not notice["gave_up"]
    assert [t["status"] for t in notice["tries"]] == [200]
    assert "target" not in notice and receiver.url not in json.dumps(notice)
    time.sleep(0.3)
    assert len(receiver.at("/hook")) == 1, "delivered once, never again"


def test_a_failing_receiver_gets_the_same_message_until_it_takes_it(serve, receiver):
    """Three 503s, then 200: four tries of one message (one webhook-id), each recorded."""
    receiver.answer("/hook", 503, 503, 503)
    srv = serve(
        notify=(receiver.url + "/hook",), notify_secret="env:NOTIFY_KEY", notify_backoff=0.05
    )
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a").headers["x-run-id"]
        receiver.delivered("/hook")
        (notice,) = _wait_notices(c, run_id, lambda n: n and n[0]["delivered"])
    tries = receiver.at("/hook")
    assert [t.status for t in tries] == [503, 503, 503, 200]
    assert len({t.headers["webhook-id"] for t in tries}) == 1
    assert notice["attempts"] == 4
    assert [t["status"] for t in notice["tries"]] == [503, 503, 503, 200]
    assert notice["tries"][0]["error"] == "the receiver answered HTTP 503"
    # Each retry waited longer than the one before (doubling from 0.05 s).
    gaps = [b.at - a.at for a, b in zip(tries, tries[1:], strict=False)]
    assert gaps[2] > gaps[0]


def test_a_receiver_that_refuses_the_message_is_not_asked_again(serve, receiver):
    """410 Gone (a hook deleted): given up at once, saying why; other 4xx likewise."""
    receiver.answer("/gone", 410)
    srv = serve(notify=(receiver.url + "/gone",), notify_secret="env:NOTIFY_KEY")
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a").headers["x-run-id"]
        (notice,) = _wait_notices(c, run_id, lambda n: n and n[0]["attempts"])
    assert notice["gave_up"] and notice["delivered"] is None
    assert notice["last_error"] == "the receiver answered HTTP 410"
    time.sleep(0.3)
    assert len(receiver.at("/gone")) == 1


def test_start_and_end_per_job_urls_from_runner_toml(serve, receiver, tmp_path):
    """``notify_on`` adds the start; a job's own URL in runner.toml joins the global one."""
    from runner.policy import policies_from_toml

    policies = policies_from_toml({"py/echo": {"notify": [receiver.url + "/echo"]}}, tmp_path)
    srv = serve(
        notify=(receiver.url + "/all",),
        notify_secret="env:NOTIFY_KEY",
        notify_on=("started", "finished"),
        policies=policies,
    )
    with srv.client() as c:
        echo = c.post("/py/echo?rg=a").headers["x-run-id"]
        other = c.post("/py/fail?how=code").headers["x-run-id"]
        wait_final(c, echo)
        wait_final(c, other)
        receiver.wait_for("/all", 4)
        receiver.wait_for("/echo", 2)
    told = sorted((r.json()["data"]["id"], r.json()["type"]) for r in receiver.at("/all"))
    assert told == sorted([(echo, "run.started"), (echo, "run.finished"),
                           (other, "run.started"), (other, "run.finished")])  # fmt: skip
    assert {r.json()["data"]["id"] for r in receiver.at("/echo")} == {echo}


def test_urls_without_a_key_stop_the_start_saying_how_to_make_one(serve, receiver):
    with pytest.raises(Exception, match="notify_secret") as err:
        serve(notify=(receiver.url + "/hook",))
    assert "whsec_" in str(err.value)


def test_a_run_that_ended_just_before_a_crash_is_told_after_the_restart(serve, receiver, tmp_path):
    """The crash came between the run's end and its notice being written: the start-up
    pass finds the ended run without notice and tells it."""
    import asyncio

    state = tmp_path / "crashed"
    state.mkdir()

    async def ended_without_notice() -> str:
        store = SQLiteStore(state / "runner.db")
        await store.open()
        now = time.time()
        from runner.records import new_run_id

        run = RunRecord(id=new_run_id(), job="py/echo", state="succeeded", params={"rg": "a"},
                        caller="user:x", created=now - 2, timeout=60, started=now - 1,
                        finished=now, exit_code=0)  # fmt: skip
        await store.write([run], [])
        await store.close()
        return run.id

    run_id = asyncio.run(ended_without_notice())
    serve(notify=(receiver.url + "/hook",), notify_secret="env:NOTIFY_KEY", state_dir=state)
    got = receiver.delivered("/hook")
    assert got.json()["data"]["id"] == run_id


def test_kill_9_with_a_notice_undelivered_delivers_it_after_the_restart(serve_process, tmp_path):
    """The receiver is down when the run ends; the runner is killed; the receiver comes
    back and so does the runner: the notice arrives, once."""
    state = tmp_path / "state"
    with Receiver() as down:
        url = down.url + "/hook"
    env = {"NOTIFY_KEY": KEY, "RUNNER_NOTIFY": url, "RUNNER_NOTIFY_SECRET": "env:NOTIFY_KEY",
           "RUNNER_NOTIFY_BACKOFF": "0.2"}  # fmt: skip
    srv = serve_process(state, env=env)
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a").headers["x-run-id"]
        wait_final(c, run_id)
        _wait_notices(c, run_id, lambda n: n and n[0]["attempts"] >= 1)
    assert srv.proc is not None
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with Receiver(port) as back:
        srv = serve_process(state, env=env)
        got = back.delivered("/hook")
        assert got.json()["data"]["id"] == run_id
        time.sleep(0.5)
        assert len([r for r in back.at("/hook") if r.status == 200]) == 1


def test_the_notification_list_of_a_run_one_may_not_see_is_404(serve, receiver):
    srv = serve(notify=(receiver.url + "/hook",), notify_secret="env:NOTIFY_KEY")
    with srv.client() as c:
        assert c.get("/_runs/01JXXXXXXXXXXXXXXXXXXXXXXX/notifications").status_code == 404


def test_no_secret_in_the_store_or_the_log(serve, receiver, caplog):
    """The key signs, and is nowhere; a URL's token (its path) is not in the store."""
    from tests.conftest import files_containing

    token_path = "/hook/T0KEN-in-the-path"
    srv = serve(notify=(receiver.url + token_path,), notify_secret="env:NOTIFY_KEY")
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a").headers["x-run-id"]
        wait_final(c, run_id)
        receiver.delivered(token_path)
    srv.stop()
    for needle in (KEY.encode(), b"T0KEN-in-the-path", KEY.removeprefix("whsec_").encode()):
        assert files_containing(srv.state_dir, needle) == []
        assert needle.decode() not in caplog.text

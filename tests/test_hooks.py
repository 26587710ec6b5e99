"""Lifecycle hooks: extensions see each run's steps, only once they are stored."""

from __future__ import annotations

import sqlite3
from typing import Any

from runner.hooks import Extension
from runner.records import Event, RunRecord
from tests.conftest import wait_final


class Recorder(Extension):
    """Records every hook call, and whether the store held the event when it came."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.db: sqlite3.Connection | None = None
        self.unstored: list[Event] = []

    def stored(self, event: Event) -> bool:
        assert self.db is not None
        row = self.db.execute(
            "SELECT 1 FROM events WHERE run_id = ? AND seq = ?", (event.run_id, event.seq)
        ).fetchone()
        return row is not None

    def on_submitted(self, run: RunRecord) -> None:
        self.calls.append(("submitted", run.id, run.job))

    def on_started(self, run: RunRecord) -> None:
        self.calls.append(("started", run.id, None))

    def on_event(self, run: RunRecord, event: Event) -> None:
        self.calls.append(("event", run.id, (event.seq, event.kind)))
        if not self.stored(event):
            self.unstored.append(event)

    def on_finished(self, run: RunRecord) -> None:
        self.calls.append(("finished", run.id, (run.state, run.exit_code)))


class Broken(Extension):
    """An extension whose hooks all fail."""

    def on_event(self, run: RunRecord, event: Event) -> None:
        raise RuntimeError("broken hook")

    def on_finished(self, run: RunRecord) -> None:
        raise RuntimeError("broken hook")


def test_hooks_see_submitted_started_every_event_and_finished_in_order(serve, tmp_path):
    """One succeeded and one failed run: each hook once, events in order, all stored."""
    recorder = Recorder()
    srv = serve(extensions=[Broken(), recorder], state_dir=tmp_path / "state")
    recorder.db = sqlite3.connect(tmp_path / "state" / "runner.db", check_same_thread=False)
    with srv.client() as c:
        ok = c.post("/py/echo?rg=a&count=2", headers={"Prefer": "wait"})
        bad = c.post("/py/fail", headers={"Prefer": "wait"})
        ok_events = c.get(f"/_runs/{ok.headers['x-run-id']}").json()["events"]
    assert ok.status_code == 200, "a failing extension must not disturb runs"
    assert bad.status_code == 500
    run_ok, run_bad = ok.headers["x-run-id"], bad.headers["x-run-id"]
    mine = [(hook, detail) for hook, run, detail in recorder.calls if run == run_ok]
    assert mine[0] == ("submitted", "py/echo")
    assert ("started", None) in mine
    assert mine[-1] == ("finished", ("succeeded", 0))
    seqs = [d[0] for hook, d in mine if hook == "event"]
    assert seqs == list(range(1, ok_events + 1))
    finished = [d for hook, run, d in recorder.calls if hook == "finished" and run == run_bad]
    assert finished == [("failed", 3)]
    assert recorder.unstored == [], "a hook saw an event before it was stored"


def test_a_run_records_its_trigger(serve):
    """An HTTP call records scheme http and the caller's address; never a credential."""
    srv = serve()
    with srv.client() as c:
        run_id = c.post("/py/echo?rg=a", headers={"Prefer": "respond-async"}).json()["id"]
        run = wait_final(c, run_id)
    assert run["trigger"] == {
        "scheme": "http",
        "delivery_id": None,
        "event": None,
        "address": "127.0.0.1",
        "fields": {},
    }

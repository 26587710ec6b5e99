"""A job that writes faster than the store commits is slowed, never buffered without bound."""

from __future__ import annotations

from collections.abc import Sequence

from runner.records import Event, RunRecord
from runner.store import SQLiteStore
from tests.conftest import parse_sse


class CountingStore(SQLiteStore):
    """A real SQLite store that notes the biggest batch of text it committed."""

    def __init__(self, path):
        super().__init__(path)
        self.biggest = 0

    def write_now(self, runs: Sequence[RunRecord], events: Sequence[Event]) -> None:
        self.biggest = max(self.biggest, sum(len(e.data) for e in events))
        super().write_now(runs, events)


def test_a_job_that_never_awaits_is_committed_as_it_goes(serve, tmp_path):
    """250,000 lines of 100 bytes (25 MB) printed without an await: stored in batches of
    at most ~8 MiB, every line kept, in order."""
    store = CountingStore(tmp_path / "runner.db")
    srv = serve(store=store)
    with srv.client() as c:
        r = c.post("/py/flood?n=250000", headers={"Prefer": "respond-async"})
        events = parse_sse(c.get(f"/_runs/{r.json()['id']}/events", timeout=60).text)
    output = [e for e in events if e.get("event") == "output"]
    assert len(output) == 250_000
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert store.biggest <= (8 << 20) + 200


def test_awaited_prints_go_no_faster_than_the_store(serve):
    """`await ctx.print(…)` works and the run succeeds with every line."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/flood?n=20000&wait=true", headers={"Prefer": "wait"})
    assert r.status_code == 200
    assert r.text.count("x" * 100) == 20_000

"""Long replays share the server: other requests are answered while they stream."""

from __future__ import annotations

import concurrent.futures
import time

from tests.conftest import wait_final


def test_health_answers_while_several_clients_replay_a_long_run(serve):
    """Four clients reading a 200,000-line log at once: /_health keeps answering quickly,
    and every reader gets every line."""
    srv = serve()
    with srv.client(timeout=120) as c:
        run_id = c.post("/py/lines?n=200000", headers={"Prefer": "respond-async"}).json()["id"]
        wait_final(c, run_id, within=60)

    def read(_: int) -> int:
        with srv.client(timeout=120) as reader:
            return reader.get(f"/_runs/{run_id}/log").text.count("\n")

    slowest = 0.0
    with concurrent.futures.ThreadPoolExecutor(4) as pool, srv.client() as c:
        readers = [pool.submit(read, i) for i in range(4)]
        while not all(r.done() for r in readers):
            t0 = time.monotonic()
            assert c.get("/_health").status_code == 200
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.02)
        lines = [r.result() for r in readers]
    assert all(n >= 200_000 for n in lines)
    assert slowest < 1.0, f"/_health took {slowest:.2f} s during the replays"

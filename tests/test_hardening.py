"""What a hostile probe found (issue 15), each through the real server."""

from __future__ import annotations

import contextlib
import json
import time

from tests.conftest import files_containing, parse_sse, wait_final

SECRET = "Sup3r-Secret-Value"


def server_log(caplog) -> str:
    """What the server logged (the test's own HTTP client logs its URLs too)."""
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("runner", "uvicorn"))
    )


def test_a_secret_in_a_failure_message_or_progress_is_masked_everywhere(serve, caplog):
    """The reason (record, done event, text line), the progress line and the server's log
    show *** where the job wrote its secret."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/leak", params={"token": SECRET})
        run_id = r.headers["x-run-id"]
        record = c.get(f"/_runs/{run_id}").json()
        events = c.get(f"/_runs/{run_id}/events").text
        log = c.get(f"/_runs/{run_id}/log").text
    assert SECRET not in r.text + json.dumps(record) + events + log + server_log(caplog)
    assert record["reason"] == "could not log in with password ***"
    assert "runner: logging in with ***" in r.text
    assert files_containing(srv.state_dir, SECRET.encode()) == []


def test_a_lock_key_built_from_a_secret_is_recorded_masked(serve):
    """A script locking on its secret: the record and the waiting message say site:***."""
    srv = serve()
    with srv.client() as c:
        first = c.post("/sh/secretlock", params={"token": SECRET, "seconds": "1"},
                       headers={"Prefer": "respond-async"}).json()  # fmt: skip
        second = c.post("/sh/secretlock", params={"token": SECRET},
                        headers={"Prefer": "respond-async"}).json()  # fmt: skip
        queued = c.get(f"/_runs/{second['id']}/events?last_event_id=0", timeout=20).text
        record = c.get(f"/_runs/{first['id']}").json()
        wait_final(c, first["id"])
    assert record["lock_key"] == "site:***"
    assert "waiting for lock site:***" in queued
    assert SECRET not in queued + json.dumps(record)
    assert files_containing(srv.state_dir, SECRET.encode()) == []


def test_a_multi_line_failure_cannot_forge_an_sse_event(serve):
    """A JobError that spells out an id and a done event stays data of one error event:
    the stream's only done is the real one (failed), and its ids run 1, 2, 3…"""
    srv = serve()
    with srv.client() as c:
        r = c.post("/py/leak", params={"token": SECRET, "forge": "true"},
                   headers={"Accept": "text/event-stream"})  # fmt: skip
    events = parse_sse(r.text)
    done = [e for e in events if e.get("event") == "done"]
    assert len(done) == 1 and json.loads(done[0]["data"])["state"] == "failed"
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["id"] != 999 for e in events)


def test_nothing_is_appended_after_done_and_leftover_tasks_are_cancelled(serve, tmp_path):
    """A task the job left running neither prints into the ended run nor goes on acting."""
    srv = serve()
    marker = tmp_path / "marker"
    with srv.client() as c:
        r = c.post("/py/leftover", params={"marker": str(marker)}, headers={"Prefer": "wait"})
        time.sleep(0.6)
        events = parse_sse(c.get(f"/_runs/{r.headers['x-run-id']}/events").text)
        log = c.get(f"/_runs/{r.headers['x-run-id']}/log").text
    assert events[-1]["event"] == "done"
    assert "late line" not in log
    assert not marker.exists(), "the leftover task was not cancelled"


def test_a_jobs_allow_list_bounds_who_reads_and_cancels_its_runs(serve, tmp_path):
    """Refused on POST /py/sleep, alice cannot read its runs, their log, or cancel them."""
    from runner.auth.htpasswd import set_password
    from runner.policy import JobPolicy

    htpasswd = tmp_path / "htpasswd"
    set_password(htpasswd, "alice", "alice-pw-123", cost=4)
    set_password(htpasswd, "bob", "bob-pw-12345", cost=4)
    srv = serve(htpasswd=htpasswd, policies=(JobPolicy("py/sleep", allow=("user:bob",)),))
    with srv.client(auth=("bob", "bob-pw-12345")) as c:
        run_id = c.post("/py/sleep?seconds=2", headers={"Prefer": "respond-async"}).json()["id"]
    with srv.client(auth=("alice", "alice-pw-123")) as c:
        seen = [c.get(f"/_runs/{run_id}{tail}").status_code for tail in ("", "/log", "/events")]
        cancel = c.post(f"/_runs/{run_id}/cancel")
        listed = c.get("/_runs").json()["runs"]
    assert seen == [404, 404, 404] and cancel.status_code == 404
    assert listed == []
    with srv.client(auth=("bob", "bob-pw-12345")) as c:
        assert c.post(f"/_runs/{run_id}/cancel").status_code == 200


def test_the_next_link_names_no_run_a_token_cannot_see(serve, tmp_path):
    """Pages of a token's history hold only its jobs' runs, and so does the cursor."""
    from runner.auth.tokens import TokenStore

    srv = serve()
    with srv.client() as c:
        mine = [c.post("/py/echo?rg=a", headers={"Prefer": "wait"}).headers["x-run-id"]
                for _ in range(2)]  # fmt: skip
        hidden = [c.post("/py/lines?n=1", headers={"Prefer": "wait"}).headers["x-run-id"]
                  for _ in range(3)]  # fmt: skip
    token = TokenStore(srv.state_dir / "tokens.json").create("ci", ["py/echo"])
    with srv.client(headers={"Authorization": f"Bearer {token}"}) as c:
        page = c.get("/_runs", params={"limit": 1}).json()
        second = c.get(page["next"]).json()
    assert [r["id"] for r in page["runs"]] == [mine[1]]
    assert not any(h in page["next"] for h in hidden)
    assert [r["id"] for r in second["runs"]] == [mine[0]]


def test_ready_says_no_while_the_store_fails_and_yes_when_it_heals(serve, tmp_path):
    """A store that cannot write makes every start a 503: /_ready says so, with the reason."""
    from tests.faults import FaultyStore

    store = FaultyStore(tmp_path / "runner.db")
    srv = serve(store=store)
    with srv.client() as c:
        store.failing.set()
        c.post("/py/echo?rg=a", headers={"Prefer": "respond-async"})
        sick = c.get("/_ready")
        store.failing.clear()
        deadline = time.monotonic() + 10
        while c.get("/_ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert sick.status_code == 503 and sick.json()["reason"] == "store failing"


def test_escape_sequences_and_nul_reach_text_clients_escaped(serve):
    """Text mode (read in terminals) shows a job's control characters escaped; SSE keeps
    the data as the job wrote it."""
    srv = serve()
    with srv.client() as c:
        text = c.post("/py/ctl").text
        sse = c.post("/py/ctl", headers={"Accept": "text/event-stream"}).text
    assert "\x1b" not in text and "\x00" not in text
    assert "\\x1b]0;owned\\x07\\x1b[2Jcleared\\x00end\ttab" in text
    assert "\\x1b[31mred error" in text
    output = [e["data"] for e in parse_sse(sse) if e.get("event") == "output"]
    assert output == ["\x1b]0;owned\x07\x1b[2Jcleared\x00end\ttab"]


def test_hostile_parameters_are_refused_before_any_run(serve):
    """A JSON body naming a parameter twice, and a value with U+2028, are 422s."""
    srv = serve()
    with srv.client() as c:
        twice = c.post("/py/echo", content=b'{"rg": "a", "rg": "b"}',
                       headers={"Content-Type": "application/json"})  # fmt: skip
        separator = c.post("/py/echo", params={"rg": "a\u2028b"})
        assert c.get("/_runs").json()["runs"] == []
    assert twice.status_code == 422
    assert twice.json()["errors"] == [
        {"name": "rg", "reason": "given more than once in the JSON body"}
    ]
    assert separator.status_code == 422
    assert separator.json()["errors"] == [{"name": "rg", "reason": "contains control characters"}]


def test_a_secret_in_the_url_is_warned_about_by_name_never_by_value(serve, caplog):
    """Proxies log URLs: a secret parameter in the query string gets a warning naming it."""
    srv = serve()
    with srv.client() as c:
        c.post("/py/leak", params={"token": SECRET})
    warned = [r.getMessage() for r in caplog.records if "came in the URL" in r.getMessage()]
    assert warned == ["/py/leak: secret parameter(s) token came in the URL; "
                      "send them in a form or JSON body"]  # fmt: skip
    assert SECRET not in server_log(caplog)


def test_a_symlink_loop_in_a_job_folder_is_named_not_a_traceback(tmp_path):
    """A job folder with a symlink loop stops the start with a message naming the file."""
    import pytest

    from runner.catalogue import Catalogue
    from runner.errors import CatalogueError

    (tmp_path / "a.sh").symlink_to(tmp_path / "b.sh")
    (tmp_path / "b.sh").symlink_to(tmp_path / "a.sh")
    with pytest.raises(CatalogueError, match="a.sh: broken symlink"):
        Catalogue.discover((tmp_path,))


def test_a_port_in_use_is_a_message_and_exit_2(tmp_path):
    """`runner serve` on a taken port says so in words (no traceback) and exits 2."""
    import socket
    import subprocess
    import sys

    from tests.conftest import ROOT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "runner", "serve", "--port", str(port), "--state-dir",
             str(tmp_path / "s"), "--no-tls"],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
            env={"PATH": "/usr/bin:/bin", "RUNNER_BUILTIN_JOBS": "false", "HOME": str(tmp_path)},
        )  # fmt: skip
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_over_its_output_limit_fails_saying_so_and_stores_no_more(serve):
    """max_output_bytes 2000: a job printing 1,000 lines is stopped and failed with the
    reason; what it stored stays under the limit (plus the line that says why)."""
    srv = serve(max_output_bytes=2000)
    with srv.client() as c:
        py = c.post("/py/lines?n=1000&every=50&pause=0.01", headers={"Prefer": "wait"})
        sh = c.post("/sh/echo", content=b"x" * 3000, headers={"Prefer": "wait"})
        record = c.get(f"/_runs/{py.headers['x-run-id']}").json()
        log = c.get(f"/_runs/{py.headers['x-run-id']}/log").text
    assert py.status_code == 500 and record["state"] == "failed"
    assert record["reason"].startswith("the run wrote more than its output limit of 2000 bytes")
    output = [line for line in log.splitlines() if not line.startswith("runner:")]
    assert sum(len(line) for line in output) <= 2000
    assert sh.status_code == 500 and "output limit" in sh.text


def test_a_store_locked_by_another_process_stalls_no_request(serve, tmp_path):
    """Another process holds the store's write lock for 1.5 s: /_health keeps answering
    at once, and a text-mode run started meanwhile completes once the lock is gone."""
    import sqlite3
    import threading

    state = tmp_path / "state"
    srv = serve(state_dir=state)
    other = sqlite3.connect(state / "runner.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    answers: list[str] = []

    def start_run() -> None:
        with srv.client() as c:
            answers.append(c.post("/py/echo?rg=a").text)

    worker = threading.Thread(target=start_run)
    worker.start()
    slowest = 0.0
    with srv.client() as c:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            t0 = time.monotonic()
            assert c.get("/_health").status_code == 200
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.05)
    other.execute("COMMIT")
    other.close()
    worker.join(20)
    assert slowest < 0.5, f"/_health took {slowest:.2f} s while the store was locked"
    assert answers and "state=succeeded" in answers[0]


def test_a_job_does_not_act_before_its_run_is_recorded(serve, tmp_path):
    """With a store taking 1 s per write, a text-mode run's job has not started 0.5 s in:
    a crash then would leave nothing done without a record of it."""
    import threading

    from tests.faults import FaultyStore

    srv = serve(store=FaultyStore(tmp_path / "runner.db", delay=1.0))
    marker = tmp_path / "touched"
    answers: list[str] = []

    def start_run() -> None:
        with srv.client() as c:
            answers.append(c.post("/py/touch", params={"path": str(marker)}).text)

    worker = threading.Thread(target=start_run)
    worker.start()
    time.sleep(0.5)
    early = marker.exists()
    worker.join(20)
    assert not early, "the job acted before its run was stored"
    assert marker.exists() and "state=succeeded" in answers[0]


def test_a_job_that_swallows_its_cancellation_is_abandoned_not_waited_for(serve):
    """Timed out or cancelled, a job that catches CancelledError is given up on after the
    grace period: the run is recorded, says so, and its slot and lock are free again."""
    srv = serve(kill_grace=0.5, max_running=1)
    with srv.client() as c:
        t0 = time.monotonic()
        timed = c.post("/py/stubborn?_timeout=0.5", headers={"Prefer": "wait"})
        took = time.monotonic() - t0
        record = c.get(f"/_runs/{timed.headers['x-run-id']}").json()
        run_id = c.post("/py/stubborn", headers={"Prefer": "respond-async"}).json()["id"]
        time.sleep(0.3)
        cancelled = c.post(f"/_runs/{run_id}/cancel")
        after = c.post("/py/echo?rg=a", headers={"Prefer": "wait"})
    assert timed.status_code == 504 and took < 6
    assert record["state"] == "timed_out" and "abandoned" in record["reason"]
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert "abandoned" in cancelled.json()["reason"]
    assert after.status_code == 200, "the slot stayed taken"


def test_slow_headers_are_cut_after_header_timeout(serve):
    """Slowloris: 30 TLS connections trickling a header line every 0.5 s are closed once
    header_timeout (1 s) passes; meanwhile a normal request is answered."""
    from tests.conftest import raw_tls

    srv = serve(header_timeout=1.0)
    with contextlib.ExitStack() as stack:
        slow = [stack.enter_context(raw_tls(srv)) for _ in range(30)]
        for s in slow:
            s.sendall(b"POST /py/echo HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(0.01)
        t0 = time.monotonic()
        closed: set[int] = set()
        while len(closed) < len(slow) and time.monotonic() - t0 < 5:
            for i, s in enumerate(slow):
                if i in closed:
                    continue
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                    if s.recv(1) == b"":
                        closed.add(i)
                except TimeoutError:
                    pass
                except OSError:
                    closed.add(i)
            time.sleep(0.5)
        took = time.monotonic() - t0
        with srv.client() as c:
            assert c.get("/_health").status_code == 200
    assert len(closed) == 30, f"{30 - len(closed)} slow connections stayed open"
    assert took < 3.5


def test_one_address_holds_at_most_max_connections_per_address(serve):
    """With 10 allowed, the 11th and 12th connections from one address are refused at once."""
    from tests.conftest import raw_tls

    srv = serve(max_connections_per_address=10, header_timeout=30.0)
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(raw_tls(srv)) for _ in range(10)]
        time.sleep(0.2)
        outcomes = []
        for _ in range(2):
            s = stack.enter_context(raw_tls(srv))
            s.settimeout(5)
            try:
                s.sendall(b"GET /_health HTTP/1.1\r\nHost: x\r\n\r\n")
                outcomes.append(s.recv(100))
            except OSError:
                outcomes.append(b"")
        first = held[0]
        first.settimeout(5)
        first.sendall(b"GET /_health HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = first.recv(100)
    assert outcomes == [b"", b""]
    assert answered.startswith(b"HTTP/1.1 200")

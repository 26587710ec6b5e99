"""Replays: a delivery id or Idempotency-Key seen before answers with its original run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from runner import lease
from runner.errors import Conflict, ParameterError
from runner.records import RunRecord, new_run_id
from runner.replays import Key, Replays, fingerprint
from runner.store import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Runs:
    """The runs a Replays may find: stored after a delay, as a real submit stores them."""

    def __init__(self) -> None:
        self.stored: dict[str, RunRecord] = {}

    async def find(self, run_id: str) -> RunRecord | None:
        await asyncio.sleep(0)  # the real lookup awaits the store
        return self.stored.get(run_id)

    def store(self, run_id: str) -> None:
        self.stored[run_id] = RunRecord(run_id, "a/b", "queued", {}, "x", time.time(), 60)


class NetworkedStore(SQLiteStore):
    """A real SQLite store whose claims take a round trip, as a database server's do: every
    copy of a request awaits there, so concurrent copies interleave at each step (SQLite's
    own claim never awaits, and could hide a race)."""

    async def claim(self, claim, *, ttl, replacing=None):
        await asyncio.sleep(0)
        held = await super().claim(claim, ttl=ttl, replacing=replacing)
        await asyncio.sleep(0)
        return held

    async def release(self, key, run_id):
        await asyncio.sleep(0)
        await super().release(key, run_id)


@pytest.fixture
async def store(tmp_path: Path):
    s = NetworkedStore(tmp_path / "runs.db")
    await s.open()
    yield s
    await s.close()


async def test_a_repeat_gets_the_original_run_and_a_new_key_a_new_one(store):
    """The second copy of a delivery finds the first one's run; another id is new."""
    runs, owner = Runs(), lease.claim()
    replays = Replays(store, owner, runs.find)
    key = Key.delivery("a/b", "github", "d-1")
    first = new_run_id()
    assert await replays.claim(key, "fp", first, "a/b") is None
    runs.store(first)
    again = await replays.claim(key, "fp", new_run_id(), "a/b")
    assert again is not None and again.id == first
    other = Key.delivery("a/b", "github", "d-2")
    assert await replays.claim(other, "fp", new_run_id(), "a/b") is None


async def test_eight_copies_at_once_start_one_run(store):
    """Concurrent copies: one claims, the others wait for nothing and are told to retry
    (409) until the run is stored, then get it: never a second run."""
    runs, owner = Runs(), lease.claim()
    replays = Replays(store, owner, runs.find)
    key = Key.idempotency("token:ci", "k-1")
    ids = [new_run_id() for _ in range(8)]
    results = await asyncio.gather(
        *(replays.claim(key, "fp", i, "a/b") for i in ids), return_exceptions=True
    )
    free = [i for i, r in zip(ids, results, strict=True) if r is None]
    assert len(free) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    runs.store(free[0])
    later = await replays.claim(key, "fp", new_run_id(), "a/b")
    assert later is not None and later.id == free[0]


async def test_an_idempotency_key_reused_for_another_request_is_refused(store):
    """Same key, different job/params/body: a 422 naming the header; deliveries are not checked."""
    runs, owner = Runs(), lease.claim()
    replays = Replays(store, owner, runs.find)
    key = Key.idempotency("user:alice", "k-2")
    run = new_run_id()
    assert await replays.claim(key, fingerprint("a/b", {"x": 1}, b""), run, "a/b") is None
    runs.store(run)
    with pytest.raises(ParameterError) as refused:
        await replays.claim(key, fingerprint("a/b", {"x": 2}, b""), new_run_id(), "a/b")
    assert refused.value.job == "a/b"
    assert refused.value.problems[0].name == "Idempotency-Key"
    delivery = Key.delivery("a/b", "gitlab", "d-3")
    await replays.claim(delivery, "fp-1", run, "a/b")
    assert (await replays.claim(delivery, "fp-2", new_run_id(), "a/b")).id == run


async def test_keys_are_per_caller(store):
    """Two callers using the same Idempotency-Key get a run each."""
    runs, owner = Runs(), lease.claim()
    replays = Replays(store, owner, runs.find)
    assert await replays.claim(Key.idempotency("user:a", "k"), "fp", new_run_id(), "j") is None
    assert await replays.claim(Key.idempotency("user:b", "k"), "fp", new_run_id(), "j") is None


async def test_a_claim_left_by_a_dead_process_is_taken_over(store):
    """A claim whose holder died before storing its run frees the key; a live one is 409."""
    runs = Runs()
    gone = Replays(store, "otherhost:1:1:1", runs.find)
    key = Key.idempotency("user:a", "k")
    assert await gone.claim(key, "fp", new_run_id(), "j") is None
    mine = Replays(store, lease.claim(), runs.find)
    retry = new_run_id()
    assert await mine.claim(key, "fp", retry, "j") is None
    with pytest.raises(Conflict):
        await Replays(store, lease.claim(), runs.find).claim(key, "fp", new_run_id(), "j")


async def test_a_released_key_starts_a_run_again_and_an_expired_one_too(store):
    """A refused run gives its key back; past the ttl the key is new."""
    runs, owner = Runs(), lease.claim()
    replays = Replays(store, owner, runs.find, ttl=0.05)
    key = Key.idempotency("user:a", "k")
    first = new_run_id()
    await replays.claim(key, "fp", first, "j")
    await replays.release(key, first)
    second = new_run_id()
    assert await replays.claim(key, "fp", second, "j") is None
    runs.store(second)
    await asyncio.sleep(0.06)
    assert await replays.claim(key, "fp", new_run_id(), "j") is None


async def test_a_retry_with_its_parameters_in_another_order_is_the_same_request(store):
    """A client retrying with its query parameters reordered gets its run, not a 422."""
    runs = Runs()
    replays = Replays(store, lease.claim(), runs.find)
    key = Key.idempotency("user:a", "k")
    first = new_run_id()
    asked = fingerprint("a/b", {"rg": "demo", "vm": "web"}, b"{}")
    assert await replays.claim(key, asked, first, "a/b") is None
    runs.store(first)
    again = fingerprint("a/b", {"vm": "web", "rg": "demo"}, b"{}")
    assert (await replays.claim(key, again, new_run_id(), "a/b")).id == first
    for other in (
        fingerprint("a/c", {"rg": "demo", "vm": "web"}, b"{}"),
        fingerprint("a/b", {"rg": "demo", "vm": "db"}, b"{}"),
        fingerprint("a/b", {"rg": "demo", "vm": "web"}, b"{ }"),
    ):
        with pytest.raises(ParameterError):
            await replays.claim(key, other, new_run_id(), "a/b")


async def test_a_signed_body_replayed_under_a_new_delivery_id_gets_the_original_run(store):
    """The body's key holds across delivery ids; another body, job or sender is new."""
    runs = Runs()
    replays = Replays(store, lease.claim(), runs.find)
    body = b'{"ref": "refs/heads/main"}'
    first = new_run_id()
    assert await replays.claim(Key.delivery_body("a/b", "github", body), "fp", first, "a/b") is None
    runs.store(first)
    again = await replays.claim(Key.delivery_body("a/b", "github", body), "x", new_run_id(), "a/b")
    assert again is not None and again.id == first
    for key in (
        Key.delivery_body("a/b", "github", body + b" "),
        Key.delivery_body("a/c", "github", body),
        Key.delivery_body("a/b", "gitlab", body),
        Key.delivery("a/b", "github", "d-1"),
    ):
        assert await replays.claim(key, "fp", new_run_id(), "a/b") is None


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: Key.delivery("a/b", "github", "d-9"), "delivery"),
        (lambda: Key.delivery_body("a/b", "github", b"{}"), "delivery"),
        (lambda: Key.idempotency("user:a", "k-9"), "Idempotency-Key"),
    ],
)
async def test_a_copy_arriving_while_the_first_starts_is_told_to_retry_in_a_second(
    store, make, named
):
    """The 409 names what was repeated and asks for a retry after one second."""
    runs, key = Runs(), make()
    replays = Replays(store, lease.claim(), runs.find)
    first = new_run_id()
    assert await replays.claim(key, "fp", first, "a/b") is None
    with pytest.raises(Conflict) as busy:
        await replays.claim(key, "fp", new_run_id(), "a/b")
    assert f"a request with this {named} is still being started (run {first})" in str(busy.value)
    assert busy.value.retry_after == 1


async def test_two_copies_taking_over_a_dead_claim_at_once_start_one_run(store):
    """When the claim's holder died, two copies arriving together both see the key free:
    one takes it, the other is told to retry, then gets that run — never a second run."""
    runs = Runs()
    key = Key.idempotency("user:a", "k")
    assert await Replays(store, "otherhost:1:1:1", runs.find).claim(key, "fp", "r0", "a/b") is None
    replays = Replays(store, lease.claim(), runs.find)
    ids = [new_run_id(), new_run_id()]
    results = await asyncio.gather(
        *(replays.claim(key, "fp", i, "a/b") for i in ids), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], Conflict)
    runs.store(ids[0])
    assert (await replays.claim(key, "fp", ids[1], "a/b")).id == ids[0]

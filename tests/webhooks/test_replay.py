"""The replay guard: a delivery id seen before maps to the run it started."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from runner.webhooks import MemoryReplayGuard, ReplayGuard

Key = tuple[str, str, str]


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowStore:
    """A stand-in for a database table of claims: every call awaits, as a round trip does,
    so concurrent claims interleave at each call."""

    def __init__(self) -> None:
        self.rows: dict[Key, str] = {}

    async def insert_new(self, key: Key, run_id: str) -> str | None:
        """``INSERT … ON CONFLICT DO NOTHING RETURNING``: atomic inside the database."""
        await asyncio.sleep(0)
        found = self.rows.get(key)
        if found is None:
            self.rows[key] = run_id
        await asyncio.sleep(0)
        return found

    async def get(self, key: Key) -> str | None:
        await asyncio.sleep(0)
        return self.rows.get(key)

    async def put(self, key: Key, run_id: str) -> None:
        await asyncio.sleep(0)
        self.rows[key] = run_id

    async def delete(self, key: Key) -> None:
        await asyncio.sleep(0)
        self.rows.pop(key, None)


class StoreReplayGuard:
    """A test double of the store-backed guard issue 17 asks for (none exists yet): one
    atomic insert per claim, with awaits around it."""

    def __init__(self, store: SlowStore | None = None) -> None:
        self.store = store or SlowStore()

    async def claim(self, job: str, scheme: str, delivery_id: str, run_id: str) -> str | None:
        return await self.store.insert_new((job, scheme, delivery_id), run_id)

    async def release(self, job: str, scheme: str, delivery_id: str) -> None:
        await self.store.delete((job, scheme, delivery_id))


class CheckThenSetGuard(StoreReplayGuard):
    """The bug a race test must catch: look, await, then write."""

    async def claim(self, job: str, scheme: str, delivery_id: str, run_id: str) -> str | None:
        key = (job, scheme, delivery_id)
        found = await self.store.get(key)
        if found is not None:
            return found
        await self.store.put(key, run_id)
        return None


GUARDS: dict[str, Callable[[], ReplayGuard]] = {
    "memory": MemoryReplayGuard,
    "store": StoreReplayGuard,
}


@pytest.fixture(params=list(GUARDS))
def guard(request) -> ReplayGuard:
    """Each guard that must keep the ReplayGuard contract."""
    return GUARDS[request.param]()


def claim(guard: ReplayGuard, delivery: str, run: str, job: str = "ci/deploy") -> str | None:
    return asyncio.run(guard.claim(job, "github", delivery, run))


async def copies_at_once(guard: ReplayGuard, count: int = 20) -> list[str | None]:
    """Claim one delivery ``count`` times concurrently, as simultaneous redeliveries do."""
    claims = (guard.claim("j", "github", "d-1", f"run-{n}") for n in range(count))
    return list(await asyncio.gather(*claims))


def test_first_delivery_is_new_and_second_returns_the_original_run(guard):
    """The first claim is new; a replay gets the first run's id and records nothing."""
    assert claim(guard, "d-1", "run-A") is None
    assert claim(guard, "d-1", "run-B") == "run-A"
    assert claim(guard, "d-1", "run-C") == "run-A"


def test_deliveries_are_kept_apart_by_job_and_scheme(guard):
    """The same id from another scheme or to another job is a different delivery."""
    assert claim(guard, "d-1", "run-A") is None
    assert claim(guard, "d-1", "run-B", job="ci/other") is None
    assert asyncio.run(guard.claim("ci/deploy", "standard", "d-1", "run-C")) is None
    assert claim(guard, "d-1", "run-D") == "run-A"


def test_release_forgets_a_claim_whose_run_was_not_created(guard):
    """After release, a retry of the delivery may start its run."""
    claim(guard, "d-1", "run-A")
    asyncio.run(guard.release("ci/deploy", "github", "d-1"))
    assert claim(guard, "d-1", "run-B") is None


def test_releasing_an_unknown_delivery_is_harmless(guard):
    """Releasing a claim that expired or never was changes nothing and raises nothing."""
    claim(guard, "d-1", "run-A")
    asyncio.run(guard.release("ci/deploy", "github", "d-2"))
    assert claim(guard, "d-1", "run-B") == "run-A"


def test_concurrent_copies_start_one_run(guard):
    """Of many simultaneous copies of one delivery, exactly one claims it; the others are
    told its run, even with a guard that awaits between calls."""
    got = asyncio.run(copies_at_once(guard))
    assert got.count(None) == 1
    winner = f"run-{got.index(None)}"
    assert {g for g in got if g is not None} == {winner}


def test_the_race_test_catches_a_guard_that_checks_then_sets():
    """The concurrency test can fail: a look-then-write guard lets several copies run."""
    got = asyncio.run(copies_at_once(CheckThenSetGuard()))
    assert got.count(None) > 1


def test_entries_expire_after_the_ttl():
    """A delivery id is remembered until its ttl has passed, then forgotten."""
    clock = Clock()
    guard = MemoryReplayGuard(ttl=60, clock=clock)
    claim(guard, "d-1", "run-A")
    clock.now += 59.9
    assert claim(guard, "d-1", "run-B") == "run-A"
    clock.now = 1060.0
    assert claim(guard, "d-1", "run-C") is None
    assert len(guard) == 1


def test_a_replay_does_not_extend_the_expiry():
    """Replaying a delivery is refused, and does not keep it alive past its first expiry."""
    clock = Clock()
    guard = MemoryReplayGuard(ttl=60, clock=clock)
    claim(guard, "d-1", "run-A")
    clock.now += 50
    assert claim(guard, "d-1", "run-B") == "run-A"
    clock.now += 11
    assert claim(guard, "d-1", "run-C") is None


def test_expiry_forgets_the_oldest_and_keeps_fresh_deliveries():
    """When an old delivery expires, a newer one within its ttl is still a replay."""
    clock = Clock()
    guard = MemoryReplayGuard(ttl=60, clock=clock)
    claim(guard, "d-old", "run-1")
    clock.now += 30
    claim(guard, "d-new", "run-2")
    clock.now += 31
    assert claim(guard, "d-new", "run-3") == "run-2"
    assert claim(guard, "d-old", "run-4") is None


def test_size_is_bounded_oldest_first():
    """Past max_entries the oldest deliveries are forgotten first."""
    guard = MemoryReplayGuard(max_entries=3)
    for n in range(5):
        claim(guard, f"d-{n}", f"run-{n}")
    assert len(guard) == 3
    assert claim(guard, "d-4", "x") == "run-4"
    assert claim(guard, "d-2", "x") == "run-2"
    assert claim(guard, "d-0", "run-new") is None


def test_by_default_a_hundred_thousand_deliveries_are_remembered():
    """The default guard remembers the last 100,000 deliveries of the day."""
    guard = MemoryReplayGuard()

    async def fill(count: int) -> None:
        for n in range(count):
            await guard.claim("j", "github", f"d-{n}", f"run-{n}")

    asyncio.run(fill(100_000))
    assert asyncio.run(guard.claim("j", "github", "d-0", "again")) == "run-0"
    asyncio.run(guard.claim("j", "github", "d-100000", "run-100000"))
    assert asyncio.run(guard.claim("j", "github", "d-0", "again")) is None


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"ttl": -1}, {"max_entries": 0}])
def test_nonsense_limits_are_refused(kwargs):
    """A guard that could remember nothing is a configuration mistake."""
    with pytest.raises(ValueError, match="positive"):
        MemoryReplayGuard(**kwargs)


def test_small_limits_are_allowed():
    """A sub-second ttl or a single entry is odd but usable."""
    clock = Clock()
    guard = MemoryReplayGuard(ttl=0.5, max_entries=1, clock=clock)
    claim(guard, "d-1", "run-A")
    assert claim(guard, "d-1", "run-B") == "run-A"
    clock.now += 0.5
    assert claim(guard, "d-1", "run-C") is None

"""The replay guard: a delivery id seen before maps to the run it started."""

from __future__ import annotations

import asyncio

import pytest

from runner.webhooks import MemoryReplayGuard, ReplayGuard


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claim(guard: ReplayGuard, delivery: str, run: str, job: str = "ci/deploy") -> str | None:
    return asyncio.run(guard.claim(job, "github", delivery, run))


def test_first_delivery_is_new_and_second_returns_the_original_run():
    """The first claim is new; a replay gets the first run's id and records nothing."""
    guard = MemoryReplayGuard()
    assert claim(guard, "d-1", "run-A") is None
    assert claim(guard, "d-1", "run-B") == "run-A"
    assert claim(guard, "d-1", "run-C") == "run-A"


def test_deliveries_are_kept_apart_by_job_and_scheme():
    """The same id from another scheme or to another job is a different delivery."""
    guard = MemoryReplayGuard()
    assert claim(guard, "d-1", "run-A") is None
    assert claim(guard, "d-1", "run-B", job="ci/other") is None
    assert asyncio.run(guard.claim("ci/deploy", "standard", "d-1", "run-C")) is None


def test_entries_expire_after_the_ttl():
    """Past its ttl a delivery id is forgotten, so the guard does not grow forever."""
    clock = Clock()
    guard = MemoryReplayGuard(ttl=60, clock=clock)
    claim(guard, "d-1", "run-A")
    clock.now += 59.9
    assert claim(guard, "d-1", "run-B") == "run-A"
    clock.now += 0.2
    assert claim(guard, "d-1", "run-C") is None
    assert len(guard) == 1


def test_a_replay_does_not_extend_the_expiry():
    """Replaying a delivery does not keep it alive past its first-seen expiry."""
    clock = Clock()
    guard = MemoryReplayGuard(ttl=60, clock=clock)
    claim(guard, "d-1", "run-A")
    clock.now += 50
    claim(guard, "d-1", "run-B")
    clock.now += 11
    assert claim(guard, "d-1", "run-C") is None


def test_size_is_bounded_oldest_first():
    """Past max_entries the oldest deliveries are forgotten first."""
    guard = MemoryReplayGuard(max_entries=3)
    for n in range(5):
        claim(guard, f"d-{n}", f"run-{n}")
    assert len(guard) == 3
    assert claim(guard, "d-4", "x") == "run-4"
    assert claim(guard, "d-2", "x") == "run-2"
    assert claim(guard, "d-0", "run-new") is None


def test_release_forgets_a_claim_whose_run_was_not_created():
    """After release, a retry of the delivery may start its run."""
    guard = MemoryReplayGuard()
    claim(guard, "d-1", "run-A")
    asyncio.run(guard.release("ci/deploy", "github", "d-1"))
    assert claim(guard, "d-1", "run-B") is None


def test_concurrent_copies_start_one_run():
    """Of many simultaneous copies of one delivery, exactly one claims it."""
    guard = MemoryReplayGuard()

    async def race() -> list[str | None]:
        return list(
            await asyncio.gather(
                *(guard.claim("j", "github", "d-1", f"run-{n}") for n in range(20))
            )
        )

    got = asyncio.run(race())
    assert got.count(None) == 1
    winner = f"run-{got.index(None)}"
    assert {g for g in got if g is not None} == {winner}


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"max_entries": 0}])
def test_nonsense_limits_are_refused(kwargs):
    """A guard that could remember nothing is a configuration mistake."""
    with pytest.raises(ValueError, match="positive"):
        MemoryReplayGuard(**kwargs)


def test_memory_guard_satisfies_the_protocol():
    """The in-memory guard is usable wherever a ReplayGuard is expected."""
    guard: ReplayGuard = MemoryReplayGuard()
    assert claim(guard, "d", "r") is None

"""The outbox extension: notices written when a moment of a run is committed, and one
sender task that delivers them, trying again with a doubling delay until each one's
deadline.

Every try is recorded on its notice (``GET /_runs/<id>/notifications``). The sender takes
due notices under a lease (:meth:`Store.outbox_take`), so replicas sharing a store never
send one notice at the same time, and a sender that dies mid-try leaves it due again.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import random
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import httpx

from runner import __version__
from runner.hooks import Extension
from runner.notify.base import Composer, Moment, Sent
from runner.records import EV_ERROR, EV_OUTPUT, FINAL, Event, Notice, RunRecord
from runner.store.base import Store

log = logging.getLogger("runner.notify")

BATCH = 16  # notices tried at once
MAX_BACKOFF = 3600.0  # the longest wait between two tries of a notice
TAIL = 40  # events read back for a result's last lines
# At start, runs that ended this long before the newest ended run get the notices a crash
# may have taken between their end and the notices' write (ids make repeats harmless).
RECONCILE_WINDOW = 300.0
CLOSE_WITHIN = 5.0  # seconds the notices being composed at shutdown get to be written


class Outbox(Extension):
    """Composers make notices at a run's moments; one task sends them."""

    name = "outbox"

    def __init__(
        self,
        store: Store,
        composers: Sequence[Composer],
        *,
        timeout: float = 10.0,
        backoff: float = 5.0,
        poll: float = 1.0,
        max_timeout: float = 6 * 3600.0,
    ) -> None:
        self.store = store
        self.composers = tuple(composers)
        self.timeout = timeout
        self.backoff = backoff
        self.poll = poll
        self.max_timeout = max_timeout
        # A try may take ``timeout`` (a Slack fallback: two); past the lease another
        # sender may take the notice, so the lease outlasts both.
        self.lease = 2 * timeout + 5
        self._by_channel = {ch: c for c in self.composers for ch in c.channels}
        self._tail = any(c.wants_tail for c in self.composers)
        self._wake = asyncio.Event()
        self._adding: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None
        self._soonest = float("inf")  # the next retry this sender scheduled
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,  # a redirect is the receiver's mistake: said, not followed
            headers={"User-Agent": f"runner/{__version__}"},
        )
        self._sender = asyncio.get_running_loop().create_task(self._send_forever())
        self._spawn(self._reconcile())

    async def close(self) -> None:
        # Notices being composed are written first: stopping must not drop one.
        if self._adding:
            await asyncio.wait(set(self._adding), timeout=CLOSE_WITHIN)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._http is not None:
            await self._http.aclose()

    # -- hooks: compose on commit -------------------------------------------------------

    def on_started(self, run: RunRecord) -> None:
        self._compose_now(copy.copy(run), "started")

    def on_finished(self, run: RunRecord) -> None:
        snapshot = copy.copy(run)
        if self._tail:
            self._spawn(self._compose_with_tail(snapshot))
        else:
            self._compose_now(snapshot, "finished")

    def on_event(self, run: RunRecord, event: Event) -> None:
        if run.state in FINAL:
            return
        notices = [n for c in self.composers for n in c.progress(run, event)]
        if notices:
            self._spawn(self._add(notices))

    def _compose_now(self, run: RunRecord, moment: Moment) -> None:
        notices = [n for c in self.composers for n in c.compose(run, moment, ())]
        if notices:
            self._spawn(self._add(notices))

    async def _compose_with_tail(self, run: RunRecord) -> None:
        tail = await self._read_tail(run)
        await self._add([n for c in self.composers for n in c.compose(run, "finished", tail)])

    async def _read_tail(self, run: RunRecord) -> list[str]:
        events = await self.store.events(run.id, after=max(0, run.last_event - TAIL))
        return [e.data for e in events if e.kind in (EV_OUTPUT, EV_ERROR)]

    async def _add(self, notices: list[Notice]) -> None:
        if not notices:
            return
        try:
            await self.store.outbox_add(notices)
        except Exception:
            # Not lost for good: the next start composes what a run's end did not write.
            log.exception("could not write %d notices of run %s", len(notices), notices[0].run_id)
            return
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._adding.add(task)
        task.add_done_callback(self._adding.discard)

    # -- start-up: what a crash took -----------------------------------------------------

    async def _reconcile(self) -> None:
        """Notices of runs that ended just before the last stop and have none."""
        try:
            added = await self._reconcile_runs()
        except Exception:
            log.exception("could not look for notices a stop left unwritten")
            return
        if added:
            log.info("%d notices a stop left unwritten were added", added)

    async def _reconcile_runs(self) -> int:
        page = await self.store.list_runs(states=sorted(FINAL), limit=200)
        if not page:
            return 0
        newest_end = max((r.finished or 0.0) for r in page)
        cutoff = newest_end - RECONCILE_WINDOW
        added = 0
        while page:
            for run in page:
                if (run.finished or 0.0) < cutoff:
                    continue
                have = {n.id for n in await self.store.notices(run.id)}
                plain = [n for c in self.composers for n in c.compose(run, "finished", ())]
                if all(n.id in have for n in plain):
                    continue
                tail = await self._read_tail(run) if self._tail else []
                notices = [n for c in self.composers for n in c.compose(run, "finished", tail)]
                await self.store.outbox_add([n for n in notices if n.id not in have])
                added += sum(1 for n in notices if n.id not in have)
            # Runs are paged by creation; none created before this can have ended after it.
            if page[-1].created < cutoff - self.max_timeout:
                break
            page = await self.store.list_runs(states=sorted(FINAL), before=page[-1].id, limit=200)
        if added:
            self._wake.set()
        return added

    # -- the sender ---------------------------------------------------------------------

    async def _send_forever(self) -> None:
        while True:
            try:
                due = await self.store.outbox_take(time.time(), self.lease, BATCH)
            except Exception:
                log.exception("could not read the outbox")
                due = []
            if due:
                await asyncio.gather(*(self._try(n) for n in due))
                continue
            self._wake.clear()
            # Woken by a local notice, or when a retry of ours comes due; other replicas'
            # notices are found by polling.
            wait = min(self.poll, max(0.0, self._soonest - time.time()))
            self._soonest = float("inf")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _try(self, notice: Notice) -> None:
        sent = await self._send(notice)
        now = time.time()
        attempts = notice.attempts + 1
        if sent.error is None:
            next_at, delivered = notice.next_at, now
        elif sent.final:
            next_at, delivered = notice.deadline + 1, None
        else:
            next_at, delivered = now + self._delay(attempts), None
            self._soonest = min(self._soonest, next_at)
        updated = dataclasses.replace(
            notice,
            attempts=attempts,
            next_at=next_at,
            delivered=delivered,
            last_status=sent.status,
            last_error=sent.error,
            tries=notice.tried(now, sent.status, sent.error),
        )
        try:
            await self.store.outbox_update(updated)
        except Exception:
            # The lease lapses and the notice is tried again: a receiver may see it twice
            # (same webhook-id), never zero times.
            log.exception("could not record a try of notice %s", notice.id)
        self._log(updated, sent)

    async def _send(self, notice: Notice) -> Sent:
        composer = self._by_channel.get(notice.channel)
        if composer is None:
            return Sent(None, f"nothing sends {notice.channel} notices here", final=True)
        assert self._http is not None
        try:
            return await composer.send(self._http, notice)
        except httpx.TimeoutException:
            return Sent(None, f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            # The type and the OS's words; never the URL (it may be a capability).
            return Sent(None, f"{type(exc).__name__}: {str(exc).replace(notice.target, '…')}")
        except Exception as exc:
            log.exception("sending notice %s failed", notice.id)
            return Sent(None, f"{type(exc).__name__} in the sender (see the server log)")

    def _delay(self, attempts: int) -> float:
        """Doubling from ``backoff``, at most an hour, with ±10 % so retries spread."""
        base: float = min(self.backoff * 2.0 ** (attempts - 1), MAX_BACKOFF)
        return base * random.uniform(0.9, 1.1)

    @staticmethod
    def _log(notice: Notice, sent: Sent) -> None:
        extra = {"run_id": notice.run_id, "event": "notice"}
        if sent.error is None:
            log.info("notice %s delivered (HTTP %s)", notice.id, sent.status, extra=extra)
        elif notice.gave_up:
            log.warning("notice %s given up after %d tries: %s", notice.id, notice.attempts,
                        sent.error, extra=extra)  # fmt: skip
        else:
            log.info("notice %s not delivered (%s); next try in %.0f s", notice.id, sent.error,
                     notice.next_at - time.time(), extra=extra)  # fmt: skip

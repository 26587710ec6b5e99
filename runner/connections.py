"""Guards on connections, below HTTP: how long a request's headers may take, and how many
connections one address may hold.

uvicorn bounds an idle keep-alive connection, not a request whose headers trickle in (a
slowloris: a header line every few seconds holds a connection, and an fd, for ever), and
it lets one address open as many connections as the fd limit allows. These subclass its
httptools protocol — uvicorn takes a protocol class in its config — rather than patch it.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def guarded_protocol(header_timeout: float, per_address: int) -> type[HttpToolsProtocol]:
    """An HTTP protocol class closing a connection whose request headers are not complete
    within ``header_timeout`` seconds of its start (or of the previous response), and
    refusing more than ``per_address`` open connections from one address."""
    open_by_address: Counter[str] = Counter()

    class GuardedProtocol(HttpToolsProtocol):
        _header_deadline: asyncio.TimerHandle | None = None
        _counted: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else "?"
            if open_by_address[address] >= per_address:
                self.logger.warning(
                    "%s already holds %d connections: one more refused", address, per_address
                )
                transport.abort()
                return
            open_by_address[address] += 1
            self._counted = address
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted is not None:
                open_by_address[self._counted] -= 1
                if open_by_address[self._counted] <= 0:
                    del open_by_address[self._counted]
                self._counted = None
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            # Each request on a keep-alive connection gets its own deadline (between
            # requests, uvicorn's keep-alive timeout holds).
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            self._disarm()
            self._header_deadline = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _too_slow(self) -> None:
            self._header_deadline = None
            self.transport.abort()

    return GuardedProtocol


__all__ = ["guarded_protocol"]

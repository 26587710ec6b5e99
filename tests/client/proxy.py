"""A real TCP proxy on loopback that cuts connections, as flaky networks and proxies do.

It forwards bytes both ways (TLS passes through untouched) to an upstream port that can be
changed while it runs (a restarted server listens elsewhere), and it can cut each
connection after ``cut_after`` bytes from the server, or after ``cut_every`` seconds.

Byte cuts fall between TLS records: a record cut in half can never be decrypted, so a
connection that always dies inside its first large record would make no progress at all,
which no real network does for ever. The record that crosses the budget goes through whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class CuttingProxy:
    upstream_port: int
    cut_after: int | None = None  # bytes server → client per connection, then cut
    cut_every: float | None = None  # seconds per connection, then cut
    port: int = 0
    connections: int = 0
    cuts: int = 0
    cut_times: list[float] = field(default_factory=list)  # time.monotonic() of each cut
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()

    async def _records(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, budget: int
    ) -> None:
        """TLS records one by one; the connection is cut after the one crossing ``budget``."""
        sent = 0
        while True:
            try:
                header = await reader.readexactly(5)
                record = header + await reader.readexactly(int.from_bytes(header[3:5], "big"))
            except asyncio.IncompleteReadError:
                return
            writer.write(record)
            await writer.drain()
            sent += len(record)
            if sent >= budget:
                raise ConnectionAbortedError("cut")

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.transport.abort()
            return
        down = (
            self._records(server_r, client_w, self.cut_after)
            if self.cut_after
            else self._pipe(server_r, client_w)
        )
        tasks = [
            asyncio.ensure_future(self._pipe(client_r, server_w)),
            asyncio.ensure_future(down),
        ]
        # Either side ending ends both, as a proxy does when its upstream goes away.
        done, _ = await asyncio.wait(
            tasks, timeout=self.cut_every, return_when=asyncio.FIRST_COMPLETED
        )
        if not done or any(t.exception() for t in done if not t.cancelled()):
            self.cuts += 1
            self.cut_times.append(time.monotonic())
        for t in tasks:
            t.cancel()
        # An abort, not a close: the client sees a reset, as behind a dying proxy.
        client_w.transport.abort()
        server_w.transport.abort()

    @contextlib.contextmanager
    def running(self) -> Iterator[CuttingProxy]:
        ready = threading.Event()
        stop: list[asyncio.Event] = []

        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._loop = asyncio.get_running_loop()
            stop.append(asyncio.Event())
            ready.set()
            async with server:
                await stop[0].wait()

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield self
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(stop[0].set)
            thread.join(10)
